//! A bare broker (midge-broker alone: no web layer, no store, no config
//! file) on a plain TCP port, with the tokio runtime chosen on the command
//! line, for comparing runtime settings and profiling the core under
//! `midge bench`:
//!
//! ```text
//! cargo run --release -p midge-broker --example bare -- 127.0.0.1:1883 current 61
//! cargo run --release -p midge-broker --example bare -- 127.0.0.1:1883 multi 61
//! ```
//!
//! Arguments: address (default 127.0.0.1:1883), `current` or `multi`
//! (default `multi`: one worker per CPU the process may run on), the
//! runtime's event interval (default 61, tokio's). Runs until killed.

use std::sync::Arc;

use midge_broker::{Broker, BrokerConfig, ConnectionInfo, Transport};
use tokio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:1883".into());
    let flavor = args.next().unwrap_or_else(|| "multi".into());
    let interval: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(61);
    let mut builder = match flavor.as_str() {
        "current" => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = builder.enable_all().event_interval(interval).build()?;
    runtime.block_on(async move {
        let config = BrokerConfig {
            max_inflight: 100,
            max_queued_messages: 10_000,
            ..BrokerConfig::default()
        };
        let broker = Broker::new(config);
        let listener = TcpListener::bind(&addr).await?;
        println!("bare midge-broker on {addr} ({flavor}, event interval {interval})");
        let name: Arc<str> = Arc::from("bare");
        loop {
            let (stream, remote) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let info = ConnectionInfo::new(Some(remote), &name, Transport::Tcp);
            tokio::spawn(broker.handle_connection(stream, info));
        }
    })
}
