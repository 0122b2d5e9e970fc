//! Runs the Bedrock runtime stand-in on loopback and prints the address it listens on.

use std::io::Write;

use clap::Parser;

use bedrock_standin::converse::Behaviour;

/// A local Bedrock runtime stand-in (Converse) for tests and demos.
#[derive(Parser)]
struct Args {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, env = "STANDIN_PORT", default_value_t = 0)]
    port: u16,
    /// Models fall for prompt extraction unless configured otherwise.
    #[arg(long, env = "STANDIN_OBEDIENT")]
    obedient: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let address = listener.local_addr()?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{address}")?;
    stdout.flush()?;
    let behaviour = Behaviour {
        obedient: args.obedient,
        ..Behaviour::default()
    };
    axum::serve(listener, bedrock_standin::router(behaviour)).await
}
