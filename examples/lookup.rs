//! Who can do what: the apps a user may act on, the members who may act on an app, and
//! why one decision came out as it did.
//!
//! ```sh
//! cargo run --release -- serve --demo          # in one terminal
//! cargo run --example lookup -- acme carol apps/web app:write
//! ```
//!
//! Connects to the default socket (`unix:./data/warden.sock`), or to `WARDEN_CONNECT`.

use warden_client::Client;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [org, subject, resource, action] = match <[String; 4]>::try_from(args) {
        Ok(a) => a,
        Err(_) => {
            eprintln!("usage: lookup ORG SUBJECT RESOURCE ACTION");
            return std::process::ExitCode::from(2);
        }
    };
    let run = async {
        let client = Client::connect_from_env().await?;
        let resources = client.lookup_resources(&subject, &org, &action).await?;
        println!("{subject} may {action} on: {}", resources.join(", "));
        let subjects = client.lookup_subjects(&org, &resource, &action).await?;
        println!("who may {action} on {resource}: {}", subjects.join(", "));
        let decision = client.explain(&subject, &org, &resource, &action).await?;
        let verdict = if decision.allowed { "allow" } else { "deny" };
        match decision.explanation {
            Some(e) if !e.rule_file.is_empty() => println!(
                "{verdict} at revision {}: {}:{} `{}` via {}",
                decision.revision, e.rule_file, e.rule_line, e.rule_text, e.role_path
            ),
            _ => println!("{verdict} at revision {}: no rule matched", decision.revision),
        }
        Ok::<_, warden::client::Error>(())
    };
    match run.await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
