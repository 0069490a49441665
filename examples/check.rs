//! Ask a running Warden one question and print the answer.
//!
//! ```sh
//! cargo run --release -- serve --demo          # in one terminal
//! cargo run --example check -- alice acme apps/web app:write
//! ```
//!
//! Connects to the default socket (`unix:./data/warden.sock`), or to `WARDEN_CONNECT`
//! (e.g. `tcp:127.0.0.1:50051`). Exits 0 on allow, 1 on deny, 2 on error, like
//! `warden check`.

use warden_client::Client;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [subject, org, resource, action] = match <[String; 4]>::try_from(args) {
        Ok(a) => a,
        Err(_) => {
            eprintln!("usage: check SUBJECT ORG RESOURCE ACTION");
            return std::process::ExitCode::from(2);
        }
    };
    let answer = async {
        let client = Client::connect_from_env().await?;
        client.can(&subject, &org, &resource, &action).await
    };
    match answer.await {
        Ok(true) => {
            println!("allow");
            std::process::ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("deny");
            std::process::ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
