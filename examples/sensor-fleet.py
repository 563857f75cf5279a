#!/usr/bin/env python3
"""A simulated fleet of sensors publishing to an MQTT broker, to watch the
dashboard (http://localhost:8080) under live traffic.

Each sensor is its own MQTT client (client id ``fleet-<site>-<n>``) with a
will. Every ``--interval`` seconds it publishes a JSON reading to
``fleet/<site>/<sensor>`` ({"temperature", "humidity", "battery", "rssi"}),
and every fourth sensor also a plain number to ``fleet/<site>/<sensor>/co2``.
Its status (``online``, or ``offline`` from the will) is retained on
``fleet/<site>/<sensor>/status``.

    pip install paho-mqtt          # 1.6 or 2.x
    python3 examples/sensor-fleet.py                       # 36 sensors, localhost:1883
    python3 examples/sensor-fleet.py --sensors 60 --interval 0.5 --duration 120
    python3 examples/sensor-fleet.py --ramp 60     # sensors join one by one over a minute

Stops after ``--duration`` seconds (0: on Ctrl-C), marking every sensor
offline on the way out.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import signal
import sys
import threading
import time

try:
    import paho.mqtt.client as mqtt
except ImportError:  # pragma: no cover - a message for people, not tests
    sys.exit("sensor-fleet needs paho-mqtt: pip install paho-mqtt")

SITES = ["north", "south", "east", "west", "depot", "lab"]


def new_client(client_id: str) -> "mqtt.Client":
    """A paho client on either API generation (1.x or 2.x)."""
    if hasattr(mqtt, "CallbackAPIVersion"):
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    return mqtt.Client(client_id=client_id)


class Sensor:
    """One device: its readings drift like real ones (a daily swing plus noise)."""

    def __init__(self, site: str, index: int, rng: random.Random):
        self.site = site
        self.name = f"sensor-{index:02d}"
        self.topic = f"fleet/{site}/{self.name}"
        self.rng = rng
        self.base_temp = rng.uniform(17.0, 26.0)
        self.base_hum = rng.uniform(35.0, 60.0)
        self.battery = rng.uniform(70.0, 100.0)
        self.phase = rng.uniform(0, 2 * math.pi)
        self.co2 = index % 4 == 0
        self.temp_noise = 0.0

    def reading(self, t: float) -> dict:
        swing = math.sin(t / 40.0 + self.phase)
        self.temp_noise = 0.8 * self.temp_noise + self.rng.gauss(0, 0.15)
        self.battery = max(0.0, self.battery - self.rng.uniform(0, 0.01))
        return {
            "temperature": round(self.base_temp + 2.5 * swing + self.temp_noise, 2),
            "humidity": round(self.base_hum - 6 * swing + self.rng.gauss(0, 0.5), 1),
            "battery": round(self.battery, 1),
            "rssi": self.rng.randint(-90, -45),
        }

    def co2_ppm(self, t: float) -> int:
        return int(600 + 250 * (1 + math.sin(t / 25.0 + self.phase)) + self.rng.gauss(0, 15))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--sensors", type=int, default=36, help="how many sensors (default 36)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between a sensor's readings")
    p.add_argument("--duration", type=float, default=0, help="seconds to run; 0 = until Ctrl-C")
    p.add_argument("--ramp", type=float, default=0, help="seconds over which the sensors join (default 0: all at once)")
    p.add_argument("--qos", type=int, choices=[0, 1], default=0)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    if args.sensors < 1 or args.interval <= 0 or args.ramp < 0:
        p.error("--sensors must be at least 1, --interval above 0, --ramp not negative")

    rng = random.Random(args.seed)
    sensors = [Sensor(SITES[i % len(SITES)], i, rng) for i in range(args.sensors)]
    clients: list = [None] * len(sensors)

    def connect(i: int) -> bool:
        s = sensors[i]
        c = new_client(f"fleet-{s.site}-{s.name}")
        if args.username:
            c.username_pw_set(args.username, args.password)
        c.will_set(f"{s.topic}/status", "offline", qos=1, retain=True)
        try:
            c.connect(args.host, args.port, keepalive=30)
        except OSError as e:
            print(f"sensor-fleet: cannot connect to {args.host}:{args.port}: {e}", file=sys.stderr)
            return False
        c.loop_start()
        c.publish(f"{s.topic}/status", "online", qos=1, retain=True)
        clients[i] = c
        return True

    print(
        f"sensor-fleet: {len(sensors)} sensors on {args.host}:{args.port}, "
        f"a reading each every {args.interval} s"
        + (f", joining over {args.ramp} s" if args.ramp else ""),
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    start = time.monotonic()
    sent = 0
    # Each sensor's next moment: it joins at start + ramp * i / n, then
    # reports every interval, give or take 30 %, as a real fleet does.
    due = [(start + args.ramp * i / len(sensors) + rng.uniform(0, args.interval), i) for i in range(len(sensors))]
    heapq.heapify(due)
    failed = False
    while not stop.is_set():
        now = time.monotonic()
        if args.duration and now - start >= args.duration:
            break
        at, i = due[0]
        if now < at:
            stop.wait(min(at - now, 0.5))
            continue
        heapq.heapreplace(due, (at + args.interval * rng.uniform(0.7, 1.3), i))
        if clients[i] is None and not connect(i):
            failed = True
            break
        s, c = sensors[i], clients[i]
        t = time.time()
        c.publish(s.topic, json.dumps(s.reading(t)), qos=args.qos)
        sent += 1
        if s.co2:
            c.publish(f"{s.topic}/co2", str(s.co2_ppm(t)), qos=args.qos)
            sent += 1

    for s, c in zip(sensors, clients):
        if c is None:
            continue
        try:
            c.publish(f"{s.topic}/status", "offline", qos=1, retain=True).wait_for_publish(2)
        except (RuntimeError, ValueError):
            pass  # the broker is gone already: its will says offline instead
        c.disconnect()
        c.loop_stop()
    if failed:
        return 1
    print(f"sensor-fleet: sent {sent} readings in {time.monotonic() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
