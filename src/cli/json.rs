//! `--json` on the commands that take `--actor` (`org`, `member`, `team`, `app`, `user`,
//! `invitation`, `domain`, `token`, `audit`, `collaborator`, `publish`, `security`, `usage`):
//! the daemon's answer as one JSON document on stdout instead of the text lines.
//!
//! The document is the call's response message in the proto3 JSON form with the proto's own
//! field names (`created_at_unix_ms`, as the HTTP gateway's `GET /openapi.json` names them),
//! every field present (defaults included, so a script never has to guess a missing key),
//! and 64-bit integers as plain numbers: times are raw Unix milliseconds in the `*_ms`
//! fields, where the text output writes RFC 3339. A list command follows every page and
//! prints one response holding every item, with `next_page_token` empty and `revision` the
//! highest of the pages. The messages carry no secrets beyond what the text shows (`token
//! create`'s secret and `invitation create`'s code, once, in both forms).

use crate::cli::directory::Failure;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use std::sync::OnceLock;

/// The proto package the CLI's responses live in.
const PACKAGE: &str = "warden.v1";

/// Text lines or one JSON document: what a command prints.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Print `msg` as JSON, or run `text` to print the text lines.
    pub(crate) fn show<M: prost::Message>(self, msg: &M, text: impl FnOnce()) -> Result<(), Failure> {
        if self.json {
            let value = to_value(msg).map_err(Failure::Other)?;
            let doc = serde_json::to_string_pretty(&value)
                .map_err(|e| Failure::Other(anyhow::anyhow!("writing the JSON answer: {e}")))?;
            println!("{doc}");
        } else {
            text();
        }
        Ok(())
    }
}

fn pool() -> anyhow::Result<&'static DescriptorPool> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(crate::api::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("reading the embedded protobuf descriptors: {e}"))
}

/// `msg` in the form described above. The message is found by its Rust type's name, which
/// prost gives the proto message's name (`pb::ListOrgsResponse` is `warden.v1.ListOrgsResponse`).
pub fn to_value<M: prost::Message>(msg: &M) -> anyhow::Result<serde_json::Value> {
    let rust_name = std::any::type_name::<M>();
    let short = rust_name.rsplit("::").next().unwrap_or(rust_name);
    let full = format!("{PACKAGE}.{short}");
    let desc = pool()?
        .get_message_by_name(&full)
        .ok_or_else(|| anyhow::anyhow!("no protobuf message {full} to write {rust_name} as JSON"))?;
    let dynamic = DynamicMessage::decode(desc, msg.encode_to_vec().as_slice())
        .map_err(|e| anyhow::anyhow!("re-reading the answer as {full}: {e}"))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
        .skip_default_fields(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| anyhow::anyhow!("writing {full} as JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::pb;

    #[test]
    fn times_are_numbers_names_are_the_protos_and_defaults_are_present() {
        let r = pb::ListTokensResponse {
            tokens: vec![pb::Token {
                token_id: "tok_1".into(),
                created_at_unix_ms: 1_796_315_992_957,
                ..Default::default()
            }],
            revision: 7,
            next_page_token: String::new(),
        };
        let v = to_value(&r).unwrap();
        assert_eq!(v["revision"], serde_json::json!(7));
        assert_eq!(v["next_page_token"], serde_json::json!(""));
        let t = &v["tokens"][0];
        assert_eq!(t["token_id"], "tok_1");
        assert_eq!(t["created_at_unix_ms"], serde_json::json!(1_796_315_992_957_u64));
        assert_eq!(t["revoked_at_unix_ms"], serde_json::json!(0));
        assert_eq!(t["scopes"], serde_json::json!([]));
    }

    #[test]
    fn a_type_outside_the_package_is_an_error_not_a_panic() {
        let e = to_value(&prost_types::Duration::default()).unwrap_err();
        assert!(e.to_string().contains("warden.v1.Duration"), "{e}");
    }
}
