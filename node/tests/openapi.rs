//! `specs/openapi.json` is the API document generated from the handlers; this test fails
//! when the two differ. `make openapi` rewrites the committed file.

use acre_node::api::ApiDoc;
use utoipa::OpenApi;

#[test]
fn the_committed_openapi_document_is_the_generated_one() {
    let generated = ApiDoc::openapi().to_pretty_json().expect("serialize the document") + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/openapi.json");
    if std::env::var_os("ACRE_WRITE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write specs/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == generated, "specs/openapi.json differs from the API in the code: run `make openapi`");
}

#[test]
fn every_route_of_the_router_is_documented() {
    let document = ApiDoc::openapi();
    for path in [
        "/v1/health",
        "/v1/section",
        "/v1/accounts/{address}",
        "/v1/accounts/{address}/history",
        "/v1/orders",
        "/v1/certificates",
        "/v1/transfers/{id}",
    ] {
        assert!(document.paths.paths.contains_key(path), "{path} is not in the document");
    }
}
