# bench/report.awk — bench/run.sh's report: reads the suite's results
# (section, round, peer, metric, value; tab-separated), prints the markdown
# section of docs/performance.md and writes one gnuplot data file per chart
# into `charts` (rows: label, then the value of every round).
# Variables: rounds, charts (directory), img (the charts' path as the doc links them).
BEGIN { FS = "\t" }
{
  k = $1 SUBSEP $3 SUBSEP $4
  L[k] = (k in L) ? L[k] " " $5 : $5
  R[$1, $2, $3, $4] = (($1, $2, $3, $4) in R) ? R[$1, $2, $3, $4] " " $5 : $5
  if (!(($1, $3) in SEEN)) { SEEN[$1, $3] = 1; NP[$1]++; PEER[$1, NP[$1]] = $3 }
}
function median(s,   a, n, i, j, t) {
  n = split(s, a, " "); if (n == 0) return ""
  for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  return (n % 2) ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
}
function med(sec, peer, m) { return ((sec, peer, m) in L) ? median(L[sec, peer, m]) : "" }
# median over rounds of the per-round ratio a/b (the same round ran both)
function ratio(sec, a, b, m,   r, l, x, y) {
  l = ""
  for (r = 1; r <= rounds; r++) {
    if (!((sec, r, a, m) in R) || !((sec, r, b, m) in R)) continue
    x = median(R[sec, r, a, m]); y = median(R[sec, r, b, m])
    if (y > 0) l = l " " x / y
  }
  return median(l)
}
function f(x, fmt) { return (x == "") ? "–" : sprintf(fmt, x) }
function rounds_of(sec, peer, m, fmt,   r, s) {
  s = ""
  for (r = 1; r <= rounds; r++) if ((sec, r, peer, m) in R) s = s (s == "" ? "" : " / ") sprintf(fmt, median(R[sec, r, peer, m]))
  return s == "" ? "–" : s
}
function chart(name, sec, m,   i, p, r, out) {
  out = charts "/" name ".dat"
  for (i = 1; i <= NP[sec]; i++) {
    p = PEER[sec, i]
    if (!((sec, p, m) in L)) continue
    printf "\"%s\"", p > out
    for (r = 1; r <= rounds; r++) printf " %s", ((sec, r, p, m) in R) ? median(R[sec, r, p, m]) : "NaN" > out
    printf "\n" > out
  }
  close(out)
  printf "![%s](%s/%s.png)\n\n", name, img, name
}
# a bulk section's table: Gbit/s per peer, per round, against two reference peers, CPU s/GB
function bulk_table(sec, ref1, ref2,   i, p) {
  printf "| peer | Gbit/s (median) | per round | × %s | × %s | CPU s/GB |\n", ref1, ref2
  print "|---|---:|---|---:|---:|---:|"
  for (i = 1; i <= NP[sec]; i++) {
    p = PEER[sec, i]
    printf "| %s | %s | %s | %s | %s | %s |\n", p, f(med(sec, p, "gbps"), "%.2f"), rounds_of(sec, p, "gbps", "%.2f"), \
      f(ratio(sec, p, ref1, "gbps"), "%.2f"), f(ratio(sec, p, ref2, "gbps"), "%.2f"), f(med(sec, p, "cpu_s_gb"), "%.2f")
  }
}
function heading(title, text) { print "### " title; print ""; if (text != "") { print text; print "" } }
function verdict(ok, x) { return x == "" ? "n/a" : (ok ? "**PASS**" : "**MISS**") }
# " (yardstick limit-forward: 1.52 ×)": a conn target's yardstick, the same ratio of bench/limit-conn ("" when not measured)
function yard(peer, y, fmt, extra) { return y == "" ? "" : sprintf(" (yardstick %s: %s%s)", peer, sprintf(fmt, y), extra) }
END {
  heading("Targets (issue 8, section 2)", "")
  x = ratio("conn", "ugate-forward", "haproxy", "rps")
  printf "- %s connections/s through a forward ≥ 1.2 × haproxy mode tcp: %s%s\n", verdict(x >= 1.2, x), f(x, "%.2f ×"), \
    yard("limit-forward", ratio("conn", "limit-forward", "haproxy", "rps"), "%.2f ×", "")
  x = ratio("conn", "ugate-forward", "haproxy", "cpu_us")
  printf "- %s CPU per connection ≤ 0.8 × haproxy's: %s (%s vs %s µs)%s\n", verdict(x != "" && x <= 0.8, x), f(x, "%.2f ×"), \
    f(med("conn", "ugate-forward", "cpu_us"), "%.0f"), f(med("conn", "haproxy", "cpu_us"), "%.0f"), \
    yard("limit-forward", ratio("conn", "limit-forward", "haproxy", "cpu_us"), "%.2f ×", ", " f(med("conn", "limit-forward", "cpu_us"), "%.0f") " µs")
  x = ratio("conn", "ugate-mixed", "haproxy-connload", "rps")
  printf "- %s SOCKS5 through mixed ≥ 1.0 × haproxy forward (same client, bench/connload): %s%s\n", verdict(x >= 1.0, x), f(x, "%.2f ×"), \
    yard("limit-socks", ratio("conn", "limit-socks", "haproxy-connload", "rps"), "%.2f ×", "")
  x = ratio("conn", "ugate-forward", "haproxy", "p99_ms")
  printf "- %s p99 latency ≤ haproxy's: %s%s\n", verdict(x != "" && x <= 1.0, x), f(x, "%.2f ×"), \
    yard("limit-forward", ratio("conn", "limit-forward", "haproxy", "p99_ms"), "%.2f ×", "")
  x = med("memory", "ugate-forward", "conn_bytes")
  printf "- %s memory per idle relayed connection ≤ 3 KB: %s B (haproxy %s B)\n", verdict(x != "" && x <= 3072, x), \
    f(x, "%.0f"), f(med("memory", "haproxy", "conn_bytes"), "%.0f")
  x = med("footprint", "ugate", "start_ms")
  printf "- %s start → accepting ≤ 15 ms: %s ms\n", verdict(x != "" && x <= 15, x), f(x, "%.1f")
  for (s = 1; s <= 4; s *= 4) {
    x = ratio("relay", "ugate-splice -P" s, "haproxy-splice -P" s, "gbps")
    printf "- %s long transfers ≥ 1.15 × haproxy forced splice, -P %d: %s\n", verdict(x >= 1.15, x), s, f(x, "%.2f ×")
  }
  print ""

  if (NP["relay"]) {
    heading("Throughput (bench/relay.sh)", "")
    chart("bench-relay", "relay", "gbps")
    print "@RELAY_REPORT@"
    print ""
  }

  if (NP["conn"]) {
    heading("Connection rate and latency", "One HTTP request per connection (`Connection: close`, a 6-byte file from nginx), " \
      "the relay a fresh process per run. Clients: wrk, or bench/connload (SOCKS5, and the `-connload` rows: " \
      "the same peers with connload, so the SOCKS5 row has a same-client yardstick; `direct-connload` vs `direct` shows " \
      "whether connload keeps up with wrk). limit-forward and limit-socks: bench/limit-conn, about the least a relay " \
      "can do per connection (the yardsticks of the targets). × haproxy: per-round ratio to haproxy with the same client.")
    chart("bench-conn", "conn", "rps")
    chart("bench-conn-cpu", "conn", "cpu_us")
    print "| peer | conn/s (median) | per round | × haproxy | CPU µs/conn | × haproxy | p50 ms | p99 ms | × haproxy p99 | errors |"
    print "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= NP["conn"]; i++) {
      p = PEER["conn", i]; ref = (p ~ /connload|mixed|socks/) ? "haproxy-connload" : "haproxy"
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", p, f(med("conn", p, "rps"), "%.0f"), \
        rounds_of("conn", p, "rps", "%.0f"), f(p == ref ? 1 : ratio("conn", p, ref, "rps"), "%.2f"), \
        f(med("conn", p, "cpu_us"), "%.0f"), f(p == ref ? 1 : ratio("conn", p, ref, "cpu_us"), "%.2f"), \
        f(med("conn", p, "p50_ms"), "%.2f"), f(med("conn", p, "p99_ms"), "%.2f"), \
        f(p == ref ? 1 : ratio("conn", p, ref, "p99_ms"), "%.2f"), f(med("conn", p, "errors"), "%d")
    }
    print ""
    if (("conn", "limit-forward", "rps") in L) {
      printf "Against the yardstick (per-round ratios): ugate-forward / limit-forward %s conn/s, %s CPU per connection", \
        f(ratio("conn", "ugate-forward", "limit-forward", "rps"), "%.2f ×"), f(ratio("conn", "ugate-forward", "limit-forward", "cpu_us"), "%.2f ×")
      if (("conn", "limit-socks", "rps") in L)
        printf "; ugate-mixed / limit-socks %s conn/s, %s CPU per connection", \
          f(ratio("conn", "ugate-mixed", "limit-socks", "rps"), "%.2f ×"), f(ratio("conn", "ugate-mixed", "limit-socks", "cpu_us"), "%.2f ×")
      print "."
      print ""
    }
  }
  if (NP["socks"]) {
    heading("SOCKS5 bulk", "`curl --socks5-hostname` downloading one file from nginx through each SOCKS5 server.")
    chart("bench-socks", "socks", "gbps")
    bulk_table("socks", "microsocks", "dante")
    print ""
  }
  if (NP["transparent"]) {
    heading("Transparent bulk (nftables REDIRECT)", "iperf3 from a client namespace to a server namespace through a " \
      "router namespace; there, nftables REDIRECTs the client's port 5201 to the relay (direct: routed, no relay). " \
      "CPU: the relay processes (redsocks: redsocks + microsocks).")
    chart("bench-transparent", "transparent", "gbps")
    bulk_table("transparent", "direct", "redsocks")
    print ""
  }
  if (NP["udp"]) {
    heading("Transparent UDP (bench/udp.sh)", "iperf3 -u from a client namespace to a server namespace through a router " \
      "namespace: forwarded by the kernel (the ceiling), captured by ugate (TPROXY), or relayed by socat or by " \
      "a minimal user-space relay (bench/udp-flood.c relay: the yardstick).")
    chart("bench-udp", "udp", "pps")
    print "@UDP_REPORT@"
    print ""
  }
  if (NP["memory"]) {
    heading("Memory", "Idle: RSS (all processes of the peer) once it listens. Per connection: (RSS with the idle " \
      "relayed connections open − idle RSS) / their number; each connection has done one byte's round trip to an echo server.")
    chart("bench-memory", "memory", "conn_bytes")
    print "| peer | idle RSS MiB | bytes per idle relayed connection (median) | per round | × haproxy |"
    print "|---|---:|---:|---|---:|"
    for (i = 1; i <= NP["memory"]; i++) {
      p = PEER["memory", i]
      printf "| %s | %s | %s | %s | %s |\n", p, f(med("memory", p, "idle_kb") / 1024, "%.1f"), f(med("memory", p, "conn_bytes"), "%.0f"), \
        rounds_of("memory", p, "conn_bytes", "%.0f"), f(ratio("memory", p, "haproxy", "conn_bytes"), "%.2f")
    }
    print ""
  }
  if (NP["footprint"]) {
    heading("Footprint", "")
    print "| file | KiB |"
    print "|---|---:|"
    x = med("footprint", "ugate", "binary_kib")
    printf "| build/ugate (static, stripped) | %s |\n", f(x, "%.0f")
    for (i = 1; i <= NP["footprint"]; i++) {
      p = PEER["footprint", i]
      if (p != "ugate" && (("footprint", p, "binary_kib") in L)) printf "| %s | %s |\n", p, f(med("footprint", p, "binary_kib"), "%.0f")
      if ((("footprint", p, "ipk_kib") in L)) { printf "| %s | %s |\n", p, f(med("footprint", p, "ipk_kib"), "%.0f"); ipk = 1 }
    }
    if (!ipk) print "| .ipk packages: not built (BENCH_QUICK does not run `build.sh ipk`) | – |"
    print ""
    print "Start → accepting: from fork to the first accepted connect() (bench/connload polls every 100 µs);" \
      " CPU: what the started process's threads had used by then (schedstat; a forked worker's not counted), which other work on the machine barely moves."
    print ""
    chart("bench-start", "footprint", "start_ms")
    print "| peer | start → accepting ms (median) | per round (median) | × ugate | CPU ms (median) | per round (median) |"
    print "|---|---:|---|---:|---:|---|"
    x = med("footprint", "ugate", "start_ms")
    for (i = 1; i <= NP["footprint"]; i++) {
      p = PEER["footprint", i]
      if (!(("footprint", p, "start_ms") in L)) continue
      printf "| %s | %s | %s | %s | %s | %s |\n", p, f(med("footprint", p, "start_ms"), "%.1f"), rounds_of("footprint", p, "start_ms", "%.1f"), \
        f(x > 0 ? med("footprint", p, "start_ms") / x : "", "%.2f"), f(med("footprint", p, "start_cpu_ms"), "%.1f"), \
        rounds_of("footprint", p, "start_cpu_ms", "%.1f")
    }
  }
}
