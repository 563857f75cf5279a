"""Fixtures of the end-to-end suite: the broker under test and its clients.

`broker` starts one broker (midge by default; mosquitto with
`--against-mosquitto` or `E2E_BROKER=mosquitto`) on a free 127.0.0.1 port in a
temporary directory, and stops exactly that process at teardown.
`broker_factory(**options)` starts more, with options (see brokerproc.OPTIONS),
and each can `.restart()`. When a test fails, the stderr of every broker it
started is attached to the report.

Markers (declared in pytest.ini):
  midge_only          behaviour the specification leaves open (or mosquitto
                      lacks) that midge promises; skipped against mosquitto.
  mosquitto_deviates  a normative statement mosquitto 2.0.11 does not follow;
                      a strict xfail against mosquitto, a plain test for midge.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from brokerproc import Broker, BrokerError, broker_kind  # noqa: E402
from mqttclient import V311, Client  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--against-mosquitto", action="store_true", default=False,
        help="run the suite against Debian's mosquitto instead of midge",
    )


def pytest_configure(config):
    if config.getoption("--against-mosquitto"):
        os.environ["E2E_BROKER"] = "mosquitto"


def pytest_report_header(config):
    kind = broker_kind()
    if kind == "midge":
        from brokerproc import midge_bin
        return f"broker under test: midge ({midge_bin()})"
    return "broker under test: mosquitto"


def pytest_collection_modifyitems(config, items):
    if broker_kind() != "mosquitto":
        return
    skip = pytest.mark.skip(reason="midge-only behaviour (running against mosquitto)")
    for item in items:
        if "midge_only" in item.keywords:
            item.add_marker(skip)
        dev = item.get_closest_marker("mosquitto_deviates")
        if dev is not None:
            why = dev.args[0] if dev.args else "mosquitto 2.0.11 deviates from the specification"
            item.add_marker(pytest.mark.xfail(reason=f"mosquitto: {why}", strict=True))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for b in getattr(item, "_e2e_brokers", []):
            report.sections.append((f"{b.kind} log (port {b.port})", b.logs()))


@pytest.fixture
def broker_factory(request, tmp_path):
    """Start brokers: `broker_factory(sys_interval=1, extra_args=[...])`."""
    started: list[Broker] = []
    request.node._e2e_brokers = started
    kind = broker_kind()

    def make(**kwargs) -> Broker:
        workdir = tmp_path / f"broker{len(started)}"
        workdir.mkdir()
        b = Broker(kind, workdir, **kwargs)
        started.append(b)
        b.start()
        return b

    yield make

    errors = []
    for b in started:
        crashed = b.proc is not None and b.proc.poll() is not None
        try:
            rc = b.stop()
        except BrokerError as e:
            errors.append(str(e))
            continue
        if crashed:
            errors.append(f"{b.kind} died during the test with exit code {rc}")
        elif rc not in (None, 0) and b.is_midge:
            errors.append(f"midge exited with {rc} on SIGTERM (expected 0)")
    if errors:
        # a broker that crashed or did not stop cleanly fails the test
        pytest.fail("; ".join(errors) + "\n" + "\n".join(b.logs() for b in started),
                    pytrace=False)


@pytest.fixture
def broker(broker_factory) -> Broker:
    """One broker with default options."""
    return broker_factory()


@pytest.fixture
def clients(request):
    """Make paho clients that are all disconnected and stopped at teardown."""
    made: list[Client] = []

    def make(broker, **kwargs) -> Client:
        c = Client(broker, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def raw_clients():
    """Make raw-socket clients that are all closed at teardown."""
    from rawmqtt import RawClient

    made: list[RawClient] = []

    def make(broker, **kwargs) -> RawClient:
        c = RawClient(broker.host, broker.port, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def witness(broker, clients):
    """A subscriber and a publisher connected before a bad client: `check`
    shows the broker goes on serving them after it closed the bad
    connection."""
    s = clients(broker, protocol=V311)
    s.connect()
    s.subscribe("witness/t", qos=1)
    p = clients(broker, protocol=V311)
    p.connect()

    def check(tag: str):
        p.publish("witness/t", tag.encode(), qos=1)
        assert s.get().payload == tag.encode()

    check("before")
    return check
