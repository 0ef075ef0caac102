#!/usr/bin/env bash
# Side-by-side proxy benchmark: the same backend reached directly, through nginx, through HAProxy and through
# one Trellis sidecar (NativeAOT trellis-proxy), measured in one run on this machine.
#
#   bench/proxy/run.sh [--duration 10] [--runs 3] [--rate 5000] [--only direct,nginx,haproxy,trellis]
#
# Pinning (2 cores): load generator (wrk/h2load), backend and control plane on core 0; the proxy under test
# alone on core 1 (taskset), one worker/thread each. Results: a Markdown table on stdout (median of --runs),
# raw tool output under artifacts/bench-proxy/. Progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=$ROOT/artifacts/bench-proxy
DURATION=10 RUNS=3 RATE=5000 ONLY="direct,nginx,haproxy,trellis" CONNS=64
while (($#)); do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    *) echo "unknown flag $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
say() { printf '[bench] %s\n' "$*" >&2; }
rm -rf "$OUT"; mkdir -p "$OUT"

need=()
for c in nginx:nginx haproxy:haproxy wrk:wrk h2load:nghttp2-client clang:clang; do
  command -v "${c%%:*}" >/dev/null 2>&1 || need+=("${c##*:}")
done
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
if ((${#need[@]})); then
  say "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

say "publishing trellis-proxy (NativeAOT) and building the CLI (Release)"
dotnet publish src/Trellis.Proxy.Host -c Release -r linux-x64 -o "$OUT/proxy-bin" -nologo -v quiet >&2
dotnet build src/Trellis.Cli -c Release -nologo -v quiet >&2
TRELLIS="dotnet $ROOT/src/Trellis.Cli/bin/Release/net10.0/trellis.dll"

# Ports: backend 18080 (HTTP/1.1) and 18081 (h2c); nginx 18180/18181; HAProxy 18280/18281; Trellis 18380/18381.
# TLS termination (HTTPS/1.1 and h2 by ALPN): nginx 18182 and HAProxy 18282 to the HTTP/1.1 backend; Trellis keeps
# the caller's protocol, so its inbound listener (--inbound-tls-cert) on 18382 serves HTTPS/1.1 to the HTTP/1.1
# backend and a second sidecar's on 18383 serves h2 to the h2c backend. One self-signed P-256 certificate for all.
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$OUT/tls.key" -out "$OUT/tls.crt" \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -days 1 2>/dev/null
cat "$OUT/tls.crt" "$OUT/tls.key" > "$OUT/tls.pem"

cat > "$OUT/backend.conf" <<CONF
worker_processes 1; daemon off; pid $OUT/backend.pid; error_log $OUT/backend.err warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  server { listen 127.0.0.1:18080 reuseport; location / { return 200 "hello from the backend\n"; } }
  server { listen 127.0.0.1:18081 http2; location / { return 200 "hello from the backend\n"; } }
}
CONF
cat > "$OUT/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $OUT/nginx.pid; error_log $OUT/nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  upstream backend { server 127.0.0.1:18080; keepalive 128; keepalive_requests 1000000; }
  server { listen 127.0.0.1:18180; location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:18181 http2; location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:18182 ssl http2; ssl_certificate $OUT/tls.crt; ssl_certificate_key $OUT/tls.key;
           location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
CONF
cat > "$OUT/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  http-reuse always
frontend h1
  bind 127.0.0.1:18280
  default_backend be
frontend h2c
  bind 127.0.0.1:18281 proto h2
  default_backend be
frontend tls
  bind 127.0.0.1:18282 ssl crt $OUT/tls.pem alpn h2,http/1.1
  default_backend be
backend be
  server b1 127.0.0.1:18080
CONF

say "starting the backend (nginx, core 0)"
taskset -c 0 nginx -c "$OUT/backend.conf" -e "$OUT/backend.err" & pids+=($!)

start_nginx() { taskset -c 1 nginx -c "$OUT/nginx.conf" -e "$OUT/nginx.err" & pids+=($!); PROXY_PID=$!; }
start_haproxy() { taskset -c 1 haproxy -f "$OUT/haproxy.cfg" -db >"$OUT/haproxy.log" 2>&1 & pids+=($!); PROXY_PID=$!; }
start_trellis() {
  if [ -z "${CP_STARTED:-}" ]; then
    say "starting the Trellis control plane (core 0) and applying the bench service"
    taskset -c 0 $TRELLIS control-plane --data "$OUT/cp" --grpc-address 127.0.0.1:18010 --http-address 127.0.0.1:18011 >"$OUT/cp.log" 2>&1 & pids+=($!)
    for _ in $(seq 100); do curl -sf 127.0.0.1:18011/healthz >/dev/null && break; sleep 0.1; done
    $TRELLIS apply --server http://127.0.0.1:18011 -f - >&2 <<YAML
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: bench}
spec:
  selector: {app: bench}
  ports: [{name: http, port: 80, protocol: http}, {name: h2, port: 81, protocol: http2}]
---
apiVersion: trellis.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: bench-1}
spec: {address: 127.0.0.1, ports: {http: 18080, h2: 18081}, labels: {app: bench}}
YAML
    CP_STARTED=1
  fi
  # The runtime settings `trellis proxy` adds (src/Trellis.Cli/Commands/ProxyCommand.cs).
  DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 DOTNET_SYSTEM_BUFFERS_SHAREDARRAYPOOL_MAXARRAYSPERPARTITION=1024 taskset -c 1 "$OUT/proxy-bin/trellis-proxy" --service loadgen \
    --control-plane 127.0.0.1:18010 --admin 127.0.0.1:18390 --inbound 127.0.0.1:18391 \
    --upstream bench:80=127.0.0.1:18380 --upstream bench:81=127.0.0.1:18381 \
    --app-port 18080 --inbound 127.0.0.1:18382 --inbound-tls-cert "$OUT/tls.crt" --inbound-tls-key "$OUT/tls.key" >"$OUT/trellis-proxy.log" 2>&1 & pids+=($!)
  PROXY_PID=$!
  # The second sidecar (h2 over TLS to the h2c backend) shares core 1 but idles outside its own run.
  DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 DOTNET_SYSTEM_BUFFERS_SHAREDARRAYPOOL_MAXARRAYSPERPARTITION=1024 taskset -c 1 "$OUT/proxy-bin/trellis-proxy" --service loadgen-h2 \
    --control-plane 127.0.0.1:18010 --admin 127.0.0.1:18392 \
    --app-port 18081 --inbound 127.0.0.1:18383 --inbound-tls-cert "$OUT/tls.crt" --inbound-tls-key "$OUT/tls.key" >"$OUT/trellis-proxy-h2.log" 2>&1 & pids+=($!)
  for _ in $(seq 100); do curl -sf 127.0.0.1:18392/ready >/dev/null && break; sleep 0.1; done
  for _ in $(seq 100); do curl -sf 127.0.0.1:18390/ready >/dev/null && break; sleep 0.1; done
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else print a[int((NR+1)/2)]}'; }

# wrk: HTTP/1.1 throughput at $CONNS connections. Prints req/s.
wrk_rps() { taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$1/" | tee -a "$OUT/$2.wrk.txt" | awk '/Requests\/sec/ {print $2}'; }
# h2load: h2c throughput, $CONNS connections, 10 streams each. Prints req/s.
h2_rps() { taskset -c 0 h2load -c"$CONNS" -m10 -t1 -D"$DURATION" "http://127.0.0.1:$1/" | tee -a "$OUT/$2.h2load.txt" | awk '/^finished in/ {gsub(/,/,""); print $4}'; }
# The same two over TLS (the proxy terminates it): wrk HTTPS/1.1 and h2load h2 (ALPN). Print req/s.
tls_h1_rps() { taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" "https://127.0.0.1:$1/" | tee -a "$OUT/$2.tls-wrk.txt" | awk '/Requests\/sec/ {print $2}'; }
tls_h2_rps() { taskset -c 0 h2load -c"$CONNS" -m10 -t1 -D"$DURATION" "https://127.0.0.1:$1/" | tee -a "$OUT/$2.tls-h2load.txt" | awk '/^finished in/ {gsub(/,/,""); print $4}'; }
# h2load --h1 at a fixed rate: per-request latencies from its log; prints "p50 p99" in ms.
fixed_rate() {
  local log="$OUT/$2.latency.$3.log"
  taskset -c 0 h2load --h1 -c16 -t1 --rps $((RATE / 16)) -D"$DURATION" --log-file="$log" "http://127.0.0.1:$1/" >>"$OUT/$2.fixed.txt"
  awk '{print $3}' "$log" | sort -n | awk '{a[NR]=$1} END {printf "%.3f %.3f\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000}'
}

declare -A ports=([direct]="18080 18081 - -" [nginx]="18180 18181 18182 18182" [haproxy]="18280 18281 18282 18282" [trellis]="18380 18381 18382 18383")
echo "| target | HTTP/1.1 req/s | h2c req/s | p50 ms @${RATE}/s | p99 ms @${RATE}/s | proxy RSS idle MB | RSS under load MB (peak) | proxy CPU % of a core per 1000 req/s | HTTPS/1.1 req/s | h2 over TLS req/s |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for target in direct nginx haproxy trellis; do
  [[ ",$ONLY," == *",$target,"* ]] || continue
  read -r h1port h2port tlsport tlsh2port <<<"${ports[$target]}"
  PROXY_PID=""
  case $target in
    nginx) start_nginx ;;
    haproxy) start_haproxy ;;
    trellis) start_trellis ;;
  esac
  for _ in $(seq 100); do curl -sf "127.0.0.1:$h1port/" >/dev/null && break; sleep 0.1; done
  curl -sf "127.0.0.1:$h1port/" >/dev/null || { say "$target does not answer on $h1port; see $OUT"; exit 1; }
  idle="-"; [ -n "$PROXY_PID" ] && idle=$(( $(rss_kb "$PROXY_PID") / 1024 ))
  say "$target: warm-up 10 s"
  taskset -c 0 wrk -t1 -c"$CONNS" -d10s "http://127.0.0.1:$h1port/" >/dev/null
  h1=(); h2=(); p50=(); p99=(); cpu=(); th1=(); th2=()
  for run in $(seq "$RUNS"); do
    say "$target: run $run/$RUNS"
    t0=""; [ -n "$PROXY_PID" ] && t0=$(cpu_ticks "$PROXY_PID")
    r=$(wrk_rps "$h1port" "$target"); h1+=("$r")
    if [ -n "$PROXY_PID" ]; then
      ticks=$(( $(cpu_ticks "$PROXY_PID") - t0 ))
      # % of one core per 1000 req/s = (ticks / HZ / duration * 100) / (req/s / 1000)
      cpu+=("$(awk -v t="$ticks" -v d="$DURATION" -v r="$r" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", (t/hz/d*100)/(r/1000)}')")
    fi
    h2+=("$(h2_rps "$h2port" "$target")")
    read -r a b <<<"$(fixed_rate "$h1port" "$target" "$run")"; p50+=("$a"); p99+=("$b")
    if [ "$tlsport" != - ]; then
      th1+=("$(tls_h1_rps "$tlsport" "$target")")
      th2+=("$(tls_h2_rps "$tlsh2port" "$target")")
    fi
  done
  load="-"; [ -n "$PROXY_PID" ] && load="$(( $(rss_kb "$PROXY_PID") / 1024 )) ($(( $(hwm_kb "$PROXY_PID") / 1024 )))"
  m() { printf '%s\n' "$@" | median; }
  echo "| $target | $(m "${h1[@]}") | $(m "${h2[@]}") | $(m "${p50[@]}") | $(m "${p99[@]}") | $idle | $load | $( ((${#cpu[@]})) && m "${cpu[@]}" || echo -) | $( ((${#th1[@]})) && m "${th1[@]}" || echo -) | $( ((${#th2[@]})) && m "${th2[@]}" || echo -) |"
  if [ -n "$PROXY_PID" ]; then kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true; fi
done
say "raw output in $OUT"
