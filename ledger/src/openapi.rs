//! OpenAPI schemas for the types whose JSON form is text, so the node's generated API
//! document describes them as the strings clients actually send.

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

macro_rules! text_schema {
    ($name:ty, $description:expr, $pattern:expr, $example:expr) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($description))
                    .pattern(Some($pattern))
                    .examples([$example])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

text_schema!(
    crate::Amount,
    "Credits as a decimal string with at most 9 decimals (1 credit = 10^9 nanos).",
    "^[0-9]+(\\.[0-9]{1,9})?$",
    "12.5"
);
text_schema!(
    crate::AccountId,
    "An account or elder: its ed25519 public key in bech32m with the `acre` prefix.",
    "^acre1[02-9ac-hj-np-z]{58}$",
    "acre1mqdslgxlwyxprar0h705l2ull2982a27je5k0ljnlnjez9fdwvzswts2ux"
);
text_schema!(crate::Digest, "A BLAKE3 hash as 64 hexadecimal characters.", "^[0-9a-f]{64}$", "00".repeat(32));
text_schema!(
    crate::SignatureBytes,
    "An ed25519 signature as 128 hexadecimal characters.",
    "^[0-9a-f]{128}$",
    "00".repeat(64)
);
text_schema!(crate::AppId, "An app's id as 64 hexadecimal characters.", "^[0-9a-f]{64}$", "00".repeat(32));
