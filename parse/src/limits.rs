//! Bounds a component (or core module) must stay within before anything
//! compiles it: size, nesting of modules and components, and the counts of
//! functions, types, imports and exports, and the size of any one function
//! body. Checked in one streaming pass of `wasmparser` (which holds no more
//! than one section at a time), then the bytes are validated with
//! `wasmparser`'s `Validator`; only then do wasmtime (or the preview-1
//! adapter) see them. Cranelift's time and memory grow with function count
//! and nesting, so unbounded input would otherwise cost the server all it
//! has before the component is refused.

use serde::Deserialize;
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

/// `[components]` in the manifest: what an uploaded or configured component
/// may contain. The defaults leave the shipped handlers (under 1 MB,
/// a few thousand functions) an order of magnitude of room.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ComponentLimits {
    /// Largest component, in bytes (also the admin API's upload limit).
    pub max_bytes: usize,
    /// Deepest nesting of components and modules inside the component.
    pub max_nesting: u32,
    /// Core functions (defined and imported) in all modules together.
    pub max_functions: u32,
    /// Type definitions (core and component) in all sections together.
    pub max_types: u32,
    /// Imports (core and component) in all sections together.
    pub max_imports: u32,
    /// Exports (core and component) in all sections together.
    pub max_exports: u32,
    /// Largest single function body, in bytes.
    pub max_function_bytes: u32,
}

impl Default for ComponentLimits {
    fn default() -> Self {
        ComponentLimits {
            max_bytes: 64 * 1024 * 1024,
            max_nesting: 16,
            max_functions: 100_000,
            max_types: 100_000,
            max_imports: 10_000,
            max_exports: 100_000,
            max_function_bytes: 1024 * 1024,
        }
    }
}

/// Why bytes were refused before compilation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    /// Past one of the [`ComponentLimits`].
    #[error("{what} exceeds the limit of {limit} ([components] {key} in the manifest)")]
    Exceeded {
        /// What was counted, with the count.
        what: String,
        /// The limit.
        limit: u64,
        /// The manifest key that sets it.
        key: &'static str,
    },
    /// Not well-formed or not valid WebAssembly.
    #[error("invalid WebAssembly: {0}")]
    Invalid(String),
}

/// Running totals of one pass.
#[derive(Default)]
struct Totals {
    functions: u64,
    types: u64,
    imports: u64,
    exports: u64,
}

fn exceeded(what: String, limit: impl Into<u64>, key: &'static str) -> LimitError {
    LimitError::Exceeded {
        what,
        limit: limit.into(),
        key,
    }
}

impl ComponentLimits {
    /// Checks `bytes` against these limits, then validates them. Memory stays bounded
    /// by the limits: the structural pass runs first.
    pub fn check(&self, bytes: &[u8]) -> Result<(), LimitError> {
        if bytes.len() > self.max_bytes {
            return Err(exceeded(
                format!("the component's size ({} bytes)", bytes.len()),
                self.max_bytes as u64,
                "max_bytes",
            ));
        }
        self.check_structure(bytes)?;
        // Every feature wasmparser knows: this pass refuses malformed bytes;
        // wasmtime refuses the features its engine does not enable.
        Validator::new_with_features(WasmFeatures::all())
            .validate_all(bytes)
            .map(|_| ())
            .map_err(|e| LimitError::Invalid(e.to_string()))
    }

    /// The streaming pass: nesting depth and counts.
    fn check_structure(&self, bytes: &[u8]) -> Result<(), LimitError> {
        let invalid = |e: wasmparser::BinaryReaderError| LimitError::Invalid(e.to_string());
        let mut depth: u32 = 0;
        let mut t = Totals::default();
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(invalid)? {
                Payload::Version { .. } => {
                    depth += 1;
                    if depth > self.max_nesting {
                        return Err(exceeded(
                            format!("nesting of modules and components (depth {depth})"),
                            self.max_nesting,
                            "max_nesting",
                        ));
                    }
                }
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::TypeSection(s) => t.types += u64::from(s.count()),
                Payload::ComponentTypeSection(s) => t.types += u64::from(s.count()),
                Payload::CoreTypeSection(s) => t.types += u64::from(s.count()),
                Payload::ImportSection(s) => {
                    t.imports += u64::from(s.count());
                    // Imported functions are functions too.
                    for imports in s {
                        for import in imports.map_err(invalid)? {
                            let (_, import) = import.map_err(invalid)?;
                            if matches!(import.ty, wasmparser::TypeRef::Func(_)) {
                                t.functions += 1;
                            }
                        }
                    }
                }
                Payload::ComponentImportSection(s) => t.imports += u64::from(s.count()),
                Payload::ExportSection(s) => t.exports += u64::from(s.count()),
                Payload::ComponentExportSection(s) => t.exports += u64::from(s.count()),
                Payload::FunctionSection(s) => t.functions += u64::from(s.count()),
                Payload::CodeSectionEntry(body) => {
                    let size = body.range().len();
                    if size > self.max_function_bytes as usize {
                        return Err(exceeded(
                            format!("a function body of {size} bytes"),
                            self.max_function_bytes,
                            "max_function_bytes",
                        ));
                    }
                }
                _ => {}
            }
            self.within_counts(&t)?;
        }
        Ok(())
    }

    fn within_counts(&self, t: &Totals) -> Result<(), LimitError> {
        let checks = [
            (
                t.functions,
                self.max_functions,
                "functions",
                "max_functions",
            ),
            (t.types, self.max_types, "type definitions", "max_types"),
            (t.imports, self.max_imports, "imports", "max_imports"),
            (t.exports, self.max_exports, "exports", "max_exports"),
        ];
        for (count, limit, what, key) in checks {
            if count > u64::from(limit) {
                return Err(exceeded(format!("{count} {what}"), limit, key));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module with `n` empty functions of one type, by hand.
    fn module_with_functions(n: u32) -> Vec<u8> {
        fn leb(mut v: u32, out: &mut Vec<u8>) {
            loop {
                let b = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    out.push(b);
                    return;
                }
                out.push(b | 0x80);
            }
        }
        fn section(id: u8, body: Vec<u8>, out: &mut Vec<u8>) {
            out.push(id);
            leb(body.len() as u32, out);
            out.extend(body);
        }
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        section(1, vec![1, 0x60, 0, 0], &mut m);
        let mut funcs = Vec::new();
        leb(n, &mut funcs);
        funcs.extend(std::iter::repeat_n(0u8, n as usize));
        section(3, funcs, &mut m);
        let mut code = Vec::new();
        leb(n, &mut code);
        for _ in 0..n {
            code.extend([2, 0, 0x0b]);
        }
        section(10, code, &mut m);
        m
    }

    #[test]
    fn counts_functions_and_validates() {
        let limits = ComponentLimits {
            max_functions: 10,
            ..ComponentLimits::default()
        };
        assert_eq!(limits.check(&module_with_functions(10)), Ok(()));
        let e = limits.check(&module_with_functions(11)).unwrap_err();
        assert!(e.to_string().contains("11 functions"), "{e}");
        assert!(matches!(
            limits.check(b"\0asm\x01\0\0\0\x0a\x01"),
            Err(LimitError::Invalid(_))
        ));
    }
}
