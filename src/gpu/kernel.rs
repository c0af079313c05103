//! A `Kernel` names one compiled variant of a WGSL shader: file, entry point, and the
//! compile-time constants that make the variant (tile sizes, workgroup size, ...).
//!
//! Variants of one shader share one source file through a tiny preprocessor: every define
//! becomes a `const NAME: u32 = VALUE;` line prepended to the file, so the shader body can use
//! `NAME` in `@workgroup_size`, array sizes and loops. Only the listed variants are ever
//! compiled, and the `shader_validation` test compiles every one of them with naga.
//!
//! Binding convention shared by every shader in `shaders/`: everything is in `@group(0)`;
//! `@binding(0)` is a `var<uniform>` struct of 4-byte scalars (the op's sizes); the storage
//! arrays an entry point uses are listed by the kernel (`.read(n)` / `.write(n)`), in the
//! order the launch passes its buffers. Entry points in one file use distinct binding numbers
//! so each can keep readable names (`x`, `dy`, `mean`, ...).

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    /// File name under `shaders/`, for messages.
    pub file: &'static str,
    /// The WGSL text of that file (`include_str!`).
    pub source: &'static str,
    pub entry: &'static str,
    pub defines: Vec<(&'static str, u32)>,
    /// Shared WGSL put between the defines and the file (e.g. workgroup reductions).
    pub prelude: Option<&'static str>,
    /// Storage bindings in launch order: (binding number, writable).
    pub bindings: Vec<(u32, bool)>,
    /// Needs `Features::SUBGROUP`.
    pub subgroups: bool,
}

impl Kernel {
    pub fn new(file: &'static str, source: &'static str, entry: &'static str) -> Self {
        Kernel {
            file,
            source,
            entry,
            defines: Vec::new(),
            prelude: None,
            bindings: Vec::new(),
            subgroups: false,
        }
    }

    /// Next launch buffer binds to read-only storage `@binding(binding)`.
    pub fn read(mut self, binding: u32) -> Self {
        self.bindings.push((binding, false));
        self
    }

    /// Next launch buffer binds to read-write storage `@binding(binding)`.
    pub fn write(mut self, binding: u32) -> Self {
        self.bindings.push((binding, true));
        self
    }

    /// Add a compile-time constant `const name: u32 = value;`.
    pub fn define(mut self, name: &'static str, value: u32) -> Self {
        self.defines.push((name, value));
        self
    }

    pub fn with_prelude(mut self, wgsl: &'static str) -> Self {
        self.prelude = Some(wgsl);
        self
    }

    pub fn with_subgroups(mut self) -> Self {
        self.subgroups = true;
        self
    }

    /// The text handed to the compiler: the defines, then the file.
    pub fn wgsl(&self) -> String {
        let mut text = String::new();
        for (name, value) in &self.defines {
            text.push_str(&format!("const {name}: u32 = {value}u;\n"));
        }
        if let Some(prelude) = self.prelude {
            text.push_str(prelude);
            text.push('\n');
        }
        text.push_str(self.source);
        text
    }

    /// Lines prepended by `wgsl()`; subtract from a compiler's line number to get the file's.
    pub fn header_lines(&self) -> usize {
        self.defines.len()
            + self
                .prelude
                .map_or(0, |p| p.lines().count() + usize::from(!p.ends_with('\n')))
    }

    /// A readable, unique name of this variant, e.g. `matmul.wgsl:main[TILE=16]`; with a
    /// prelude, a hash of it follows (`+1a2b3c4d`), so that variants differing only there
    /// do not share a cached pipeline.
    pub fn key(&self) -> String {
        let defs: Vec<String> = self
            .defines
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        let prelude = self
            .prelude
            .map(|p| {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                p.hash(&mut h);
                format!("+{:08x}", h.finish() as u32)
            })
            .unwrap_or_default();
        format!("{}:{}[{}]{prelude}", self.file, self.entry, defs.join(","))
    }

    /// Parse and validate with naga, reporting the line in the shader file itself.
    pub fn validate(&self) -> Result<()> {
        let text = self.wgsl();
        let module = naga::front::wgsl::parse_str(&text)
            .map_err(|e| self.error_at(&text, e.location(&text), &e.emit_to_string(&text)))?;
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        );
        validator.validate(&module).map_err(|e| {
            let loc = e.location(&text);
            self.error_at(&text, loc, &e.emit_to_string(&text))
        })?;
        if !module.entry_points.iter().any(|ep| ep.name == self.entry) {
            return Err(Error::Shader {
                file: self.file,
                entry: self.entry,
                msg: "no such entry point".into(),
            });
        }
        Ok(())
    }

    fn error_at(&self, _text: &str, loc: Option<naga::SourceLocation>, msg: &str) -> Error {
        let line = loc
            .map(|l| (l.line_number as usize).saturating_sub(self.header_lines()))
            .map(|l| format!("line {l}: "))
            .unwrap_or_default();
        Error::Shader {
            file: self.file,
            entry: self.entry,
            msg: format!("{line}{msg}"),
        }
    }
}

/// Split `groups` workgroups into a 2-D grid that respects the 65535-per-dimension limit.
/// Shaders recover the linear workgroup index as `wid.x + wid.y * nwg.x`.
pub fn grid(groups: u32) -> [u32; 3] {
    const MAX: u32 = 65535;
    if groups <= MAX {
        [groups.max(1), 1, 1]
    } else {
        [MAX, groups.div_ceil(MAX), 1]
    }
}

#[cfg(test)]
mod tests {
    use super::Kernel;

    #[test]
    fn variants_differing_only_in_their_prelude_have_different_keys() {
        let k = |prelude| {
            Kernel::new("f.wgsl", "", "main")
                .define("N", 1)
                .with_prelude(prelude)
        };
        assert_ne!(k("alias W = u32;").key(), k("alias W = vec4<u32>;").key());
        assert_eq!(k("alias W = u32;").key(), k("alias W = u32;").key());
        assert_eq!(Kernel::new("f.wgsl", "", "main").key(), "f.wgsl:main[]");
    }
}
