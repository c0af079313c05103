//! A `Kernel` names one compiled variant of a WGSL entry point: the shader files it is compiled
//! from, the entry point, the compile-time constants that make the variant (tile sizes,
//! workgroup size, ...) and the storage buffers a launch binds.
//!
//! WGSL has no `#include`, so a kernel lists its files: shared parts first (a family's
//! `common.wgsl`, `workgroup_reduce.wgsl`), the file holding the entry point last. The text
//! handed to the compiler is the defines (`const NAME: u32 = VALUE;`), the type aliases
//! (`alias NAME = TYPE;`), then the files in order; errors are reported at the line of the file
//! they are in. Only the listed variants are ever compiled, and the `shader_validation` test
//! compiles every one of them with naga.
//!
//! Binding convention shared by every shader in `shaders/`: everything is in `@group(0)`;
//! `@binding(0)` is a `var<uniform>` struct `Params` of 4-byte scalars (the op's sizes), which
//! the launch fills from a Rust struct with the same fields; the storage arrays an entry point
//! uses are listed by the kernel (`.read(n)` / `.write(n)`), in the order the launch passes its
//! buffers. Entry points of one family use distinct binding numbers so each can keep readable
//! names (`x`, `dy`, `mean`, ...). `validate` checks the list against the entry point, and the
//! size of the launch's `Params` is checked against the shader's at every dispatch.

use crate::error::{Error, Result};

/// One WGSL file of `shaders/`: its path there (for messages) and its text. Identified by the
/// path alone.
#[derive(Clone, Copy, Debug)]
pub struct ShaderFile {
    pub path: &'static str,
    pub text: &'static str,
}

impl PartialEq for ShaderFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for ShaderFile {}

impl std::hash::Hash for ShaderFile {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.path.hash(state)
    }
}

/// The `ShaderFile` of `shaders/<path>`, its text built into the crate.
macro_rules! shader_file {
    ($path:literal) => {
        $crate::gpu::ShaderFile {
            path: $path,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $path)),
        }
    };
}
pub(crate) use shader_file;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    /// The files compiled together, in order; the entry point is in the last one.
    pub sources: Vec<ShaderFile>,
    pub entry: &'static str,
    pub defines: Vec<(&'static str, u32)>,
    /// `alias NAME = TYPE;` lines (the element type of a variant, e.g. `Val = vec4<f32>`).
    pub aliases: Vec<(&'static str, &'static str)>,
    /// Storage bindings in launch order: (binding number, writable).
    pub bindings: Vec<(u32, bool)>,
    /// Needs `Features::SUBGROUP`.
    pub subgroups: bool,
    /// Uses `f16` (`enable f16;`, `Features::SHADER_F16`).
    pub f16: bool,
    /// Uses cooperative matrices (`enable wgpu_cooperative_matrix;`,
    /// `Features::EXPERIMENTAL_COOPERATIVE_MATRIX`).
    pub coop_matrix: bool,
}

impl Kernel {
    /// `entry` of the last of `sources`, compiled after the others.
    pub fn new(sources: &[ShaderFile], entry: &'static str) -> Self {
        assert!(!sources.is_empty(), "a kernel needs a shader file");
        Kernel {
            sources: sources.to_vec(),
            entry,
            defines: Vec::new(),
            aliases: Vec::new(),
            bindings: Vec::new(),
            subgroups: false,
            f16: false,
            coop_matrix: false,
        }
    }

    /// The file of the entry point, for messages.
    pub fn file(&self) -> &'static str {
        self.sources.last().map_or("", |f| f.path)
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

    /// Add a type alias `alias name = ty;`.
    pub fn alias(mut self, name: &'static str, ty: &'static str) -> Self {
        self.aliases.push((name, ty));
        self
    }

    pub fn with_subgroups(mut self) -> Self {
        self.subgroups = true;
        self
    }

    pub fn with_f16(mut self) -> Self {
        self.f16 = true;
        self
    }

    /// Cooperative matrices of f16 (so f16 too).
    pub fn with_coop_matrix(mut self) -> Self {
        self.coop_matrix = true;
        self.with_f16()
    }

    /// The `enable` directives the text starts with.
    fn enables(&self) -> Vec<&'static str> {
        let mut e = Vec::new();
        if self.f16 {
            e.push("f16");
        }
        if self.coop_matrix {
            e.push("wgpu_cooperative_matrix");
        }
        e
    }

    /// The text handed to the compiler: the `enable` directives, the defines, the aliases,
    /// then the files.
    pub fn wgsl(&self) -> String {
        let mut text = String::new();
        for extension in self.enables() {
            text.push_str(&format!("enable {extension};\n"));
        }
        for (name, value) in &self.defines {
            text.push_str(&format!("const {name}: u32 = {value}u;\n"));
        }
        for (name, ty) in &self.aliases {
            text.push_str(&format!("alias {name} = {ty};\n"));
        }
        for file in &self.sources {
            text.push_str(file.text);
            if !file.text.ends_with('\n') {
                text.push('\n');
            }
        }
        text
    }

    /// The file and its line number of line `line` (1-based) of `wgsl()`; None for the
    /// generated lines before the first file.
    fn locate(&self, line: usize) -> Option<(&'static str, usize)> {
        let mut first = self.enables().len() + self.defines.len() + self.aliases.len() + 1;
        for file in &self.sources {
            let lines = file.text.lines().count().max(1);
            if line < first + lines {
                return (line >= first).then(|| (file.path, line - first + 1));
            }
            first += lines;
        }
        None
    }

    /// A readable name of this variant, e.g. `matmul/simple.wgsl:naive[WG=64]`.
    pub fn key(&self) -> String {
        let defs: Vec<String> = self
            .defines
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .chain(self.aliases.iter().map(|(n, t)| format!("{n}={t}")))
            .collect();
        format!("{}:{}[{}]", self.file(), self.entry, defs.join(","))
    }

    /// Parse and validate with naga (reporting the line in the shader file itself), and check
    /// that `bindings` are exactly the storage bindings the entry point uses, each with the
    /// shader's access mode.
    pub fn validate(&self) -> Result<()> {
        self.reflect().map(|_| ())
    }

    /// `validate`, returning what the pipeline needs to know of the shader.
    pub fn reflect(&self) -> Result<Reflection> {
        let text = self.wgsl();
        let module = naga::front::wgsl::parse_str(&text)
            .map_err(|e| self.error_at(e.location(&text), &e.emit_to_string(&text)))?;
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        );
        let info = validator
            .validate(&module)
            .map_err(|e| self.error_at(e.location(&text), &e.emit_to_string(&text)))?;
        let Some(index) = module
            .entry_points
            .iter()
            .position(|ep| ep.name == self.entry)
        else {
            return Err(self.error("no such entry point".into()));
        };
        // The globals this entry point (and every function it calls) touches.
        let uses = info.get_entry_point(index);
        let mut layouter = naga::proc::Layouter::default();
        layouter
            .update(module.to_ctx())
            .map_err(|e| self.error(format!("laying out its types: {e}")))?;
        let mut storage = Vec::new();
        let mut params_bytes = None;
        let mut workgroup_bytes = 0;
        for (handle, var) in module.global_variables.iter() {
            if uses[handle].is_empty() {
                continue;
            }
            if var.space == naga::AddressSpace::WorkGroup {
                workgroup_bytes += layouter[var.ty].size;
            }
            let Some(slot) = &var.binding else { continue };
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
        Ok(Reflection {
            params_bytes,
            workgroup_bytes,
            invocations: module.entry_points[index].workgroup_size.iter().product(),
        })
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
            file: self.file(),
            entry: self.entry,
            msg,
        }
    }

    /// A compiler message at `loc` of `wgsl()`, naming the file and line it points into.
    fn error_at(&self, loc: Option<naga::SourceLocation>, msg: &str) -> Error {
        let place = loc.and_then(|l| self.locate(l.line_number as usize));
        match place {
            Some((file, line)) => Error::Shader {
                file,
                entry: self.entry,
                msg: format!("line {line}: {msg}"),
            },
            None => self.error(msg.to_string()),
        }
    }
}

/// What a pipeline needs to know of its shader beyond the text.
pub struct Reflection {
    /// Bytes of the uniform `Params` at @binding(0), where the entry point reads it.
    pub params_bytes: Option<u32>,
    /// Bytes of the `var<workgroup>` arrays the entry point touches.
    pub workgroup_bytes: u32,
    /// Invocations per workgroup (the product of `@workgroup_size`).
    pub invocations: u32,
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
    use super::{Kernel, ShaderFile};

    const COMMON: ShaderFile = ShaderFile {
        path: "common.wgsl",
        text: "const ONE: u32 = 1u;\nconst TWO: u32 = 2u;\n",
    };
    const MAIN: ShaderFile = ShaderFile {
        path: "main.wgsl",
        text: "// first line\nconst THREE: u32 = 3u;",
    };

    #[test]
    fn lines_map_back_to_their_file() {
        let k = Kernel::new(&[COMMON, MAIN], "main")
            .define("N", 1)
            .alias("W", "u32");
        // Lines 1-2 are generated, 3-4 are common.wgsl, 5-6 main.wgsl.
        assert_eq!(k.locate(2), None);
        assert_eq!(k.locate(3), Some(("common.wgsl", 1)));
        assert_eq!(k.locate(4), Some(("common.wgsl", 2)));
        assert_eq!(k.locate(6), Some(("main.wgsl", 2)));
        assert_eq!(k.locate(7), None);
        assert_eq!(k.wgsl().lines().count(), 6);
    }

    #[test]
    fn variants_differing_only_in_an_alias_have_different_keys() {
        let k = |ty| Kernel::new(&[MAIN], "main").define("N", 1).alias("W", ty);
        assert_ne!(k("u32").key(), k("vec4<u32>").key());
        assert_eq!(k("u32").key(), "main.wgsl:main[N=1,W=u32]");
    }
}
