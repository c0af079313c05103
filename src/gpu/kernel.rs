//! A `Kernel` names one compiled variant of a WGSL shader: file, entry point, and the
//! compile-time constants that make the variant (tile sizes, workgroup size, ...).
//!
//! Variants of one shader share one source file through a tiny preprocessor: every define
//! becomes a `const NAME: u32 = VALUE;` line prepended to the file, so the shader body can use
//! `NAME` in `@workgroup_size`, array sizes and loops. Only the listed variants are ever
//! compiled, and the `shader_validation` test compiles every one of them with naga.
//!
//! Binding convention shared by every shader in `shaders/`: everything is in `@group(0)`;
//! `@binding(0)` is a `var<uniform>` struct `Params` of 4-byte scalars (the op's sizes), which
//! the launch fills from a Rust struct with the same fields; the storage arrays an entry point
//! uses are listed by the kernel (`.read(n)` / `.write(n)`), in the order the launch passes its
//! buffers. Entry points in one file use distinct binding numbers so each can keep readable
//! names (`x`, `dy`, `mean`, ...). `validate` checks the list against what naga says the entry
//! point uses, and every dispatch checks the size of its `Params` against the shader's.

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

    /// Parse and validate with naga (reporting the line in the shader file itself), and check
    /// that `bindings` are exactly the storage bindings the entry point uses, each with the
    /// shader's access mode.
    pub fn validate(&self) -> Result<()> {
        self.reflect().map(|_| ())
    }

    /// `validate`, returning what the pipeline needs to know of the shader.
    pub(crate) fn reflect(&self) -> Result<Reflection> {
        let text = self.wgsl();
        let module = naga::front::wgsl::parse_str(&text)
            .map_err(|e| self.error_at(&text, e.location(&text), &e.emit_to_string(&text)))?;
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        );
        let info = validator.validate(&module).map_err(|e| {
            let loc = e.location(&text);
            self.error_at(&text, loc, &e.emit_to_string(&text))
        })?;
        let Some(index) = module
            .entry_points
            .iter()
            .position(|ep| ep.name == self.entry)
        else {
            return Err(self.error("no such entry point".into()));
        };
        // The globals this entry point (and every function it calls) touches.
        let uses = info.get_entry_point(index);
        let mut storage = Vec::new();
        let mut params_bytes = None;
        for (handle, var) in module.global_variables.iter() {
            let Some(slot) = &var.binding else { continue };
            if uses[handle].is_empty() {
                continue;
            }
            let name = var.name.clone().unwrap_or_default();
            if slot.group != 0 {
                return Err(self.error(format!(
                    "`{name}` is in @group({}); every binding is in @group(0)",
                    slot.group
                )));
            }
            match var.space {
                naga::AddressSpace::Storage { access } => storage.push(UsedBinding {
                    binding: slot.binding,
                    writable: access.contains(naga::StorageAccess::STORE),
                    name,
                }),
                naga::AddressSpace::Uniform if slot.binding == 0 => {
                    params_bytes = match module.types[var.ty].inner {
                        naga::TypeInner::Struct { span, .. } => Some(span),
                        _ => None,
                    }
                }
                _ => {
                    return Err(self.error(format!(
                        "`{name}` at @binding({}) is neither the uniform Params at @binding(0) \
                         nor a storage buffer",
                        slot.binding
                    )))
                }
            }
        }
        self.check_bindings(&storage)?;
        Ok(Reflection { params_bytes })
    }

    /// `bindings` against the storage bindings the entry point uses (`used`).
    fn check_bindings(&self, used: &[UsedBinding]) -> Result<()> {
        let mode = |writable: bool| if writable { "read_write" } else { "read" };
        for (i, &(binding, writable)) in self.bindings.iter().enumerate() {
            if self.bindings[..i].iter().any(|&(b, _)| b == binding) {
                return Err(self.error(format!(
                    "launch buffer {i} binds @binding({binding}) a second time"
                )));
            }
            let Some(u) = used.iter().find(|u| u.binding == binding) else {
                return Err(self.error(format!(
                    "launch buffer {i} binds @binding({binding}), which the entry point does \
                     not use (it uses {})",
                    describe(used)
                )));
            };
            if u.writable != writable {
                return Err(self.error(format!(
                    "launch buffer {i} binds @binding({binding}) `{}` as {}, the shader \
                     declares it var<storage, {}>",
                    u.name,
                    mode(writable),
                    mode(u.writable)
                )));
            }
        }
        if let Some(u) = used
            .iter()
            .find(|u| !self.bindings.iter().any(|&(b, _)| b == u.binding))
        {
            return Err(self.error(format!(
                "the entry point uses @binding({}) `{}`, which no launch buffer binds",
                u.binding, u.name
            )));
        }
        Ok(())
    }

    fn error(&self, msg: String) -> Error {
        Error::Shader {
            file: self.file,
            entry: self.entry,
            msg,
        }
    }

    fn error_at(&self, _text: &str, loc: Option<naga::SourceLocation>, msg: &str) -> Error {
        let line = loc
            .map(|l| (l.line_number as usize).saturating_sub(self.header_lines()))
            .map(|l| format!("line {l}: "))
            .unwrap_or_default();
        self.error(format!("{line}{msg}"))
    }
}

/// What a pipeline needs to know of its shader beyond the text.
pub(crate) struct Reflection {
    /// Bytes of the uniform `Params` at @binding(0), where the entry point reads it.
    pub params_bytes: Option<u32>,
}

/// A storage buffer the entry point touches, as the shader declares it.
struct UsedBinding {
    binding: u32,
    writable: bool,
    name: String,
}

/// "@binding(1) `c` (read_write), @binding(2) `a` (read)".
fn describe(used: &[UsedBinding]) -> String {
    let list: Vec<String> = used
        .iter()
        .map(|u| {
            let mode = if u.writable { "read_write" } else { "read" };
            format!("@binding({}) `{}` ({mode})", u.binding, u.name)
        })
        .collect();
    if list.is_empty() {
        "no storage buffer".into()
    } else {
        list.join(", ")
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
