# Sourced by the scripts that run the crate: Mesa's window-system probing prints
# "error: XDG_RUNTIME_DIR is invalid" for every device it opens when the variable is unset or
# points nowhere (containers, CI, ssh sessions). Give it a private directory.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/wgformer-runtime-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi
