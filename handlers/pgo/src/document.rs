//! The API's OpenAPI document ([`crate::OPENAPI`], written for the default
//! version) with the server's configured version in it: the version every
//! `ClientVersion` must equal (`server_version`) is the document's
//! `ClientVersion` enum, its examples' `ClientVersion` and `info.version`.

use serde_json::Value;

/// The document, as JSON text, for a server whose version is `version`.
/// (The shipped document is valid JSON, as the tests below check; were it
/// not, it would be served unchanged and `openapi::serve` would say so.)
pub fn for_version(version: &str) -> String {
    let Ok(mut doc) = serde_json::from_str::<Value>(crate::OPENAPI) else {
        return crate::OPENAPI.to_string();
    };
    doc["info"]["version"] = Value::from(version);
    doc["components"]["schemas"]["ClientVersion"]["enum"] = Value::from(vec![version]);
    if let Some(paths) = doc["paths"].as_object_mut() {
        for example in paths
            .values_mut()
            .filter_map(|p| p.pointer_mut("/post/requestBody/content/application~1json/example"))
        {
            if example.get("ClientVersion").is_some() {
                example["ClientVersion"] = Value::from(version);
            }
        }
    }
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_the_configured_version_wherever_it_names_one() {
        let doc: Value = serde_json::from_str(&for_version("4.9.0")).unwrap();
        assert_eq!(doc["info"]["version"], "4.9.0");
        assert_eq!(
            doc["components"]["schemas"]["ClientVersion"]["enum"],
            serde_json::json!(["4.9.0"])
        );
        // (The description still names the reference, postgres-operator v4.7.4.)
        let text = doc.to_string();
        assert_eq!(
            serde_json::from_str::<Value>(&for_version("4.7.4")).unwrap(),
            serde_json::from_str::<Value>(crate::OPENAPI).unwrap(),
            "the shipped document is the default version's"
        );
        assert!(
            !text.contains("\"4.7.4\""),
            "a default version is left: {text}"
        );
        let example = &doc["paths"]["/clusters"]["post"]["requestBody"]["content"]["application/json"]
            ["example"];
        assert_eq!(example["ClientVersion"], "4.9.0");
        assert_eq!(example["Name"], "mycluster");
    }
}
