// Network namespaces for the transparent-capture tests: a client, a router
// (where ugate runs) and a server, joined by two veth pairs, with IPv4 and
// IPv6 addresses chosen here. Nothing touches the host's network or nft
// ruleset: every interface is created inside a namespace, and the namespaces
// (ugt-<pid>-<n>-c|r|s) are removed on teardown, at process exit as a last
// resort, and, for a run that crashed, at the start of the next run.
//
// The server namespace runs a Node HTTP server on :80 and an HTTPS server on
// :443 (certificate of a test CA made with openssl at test time). Both echo a
// request's body and tell in x-* headers what they saw: the peer address
// (ugate's when captured, the client's when not), Host and SNI.
//
// Synchronisation is event based: commands resolve on their 'close' event,
// servers on their `ready` line; timeouts only turn a hang into a failure.

import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { accessSync, constants, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AssertLike, TestLike } from './ugate.js'
import { tempDir } from './temp.js'

// ---------------------------------------------------------------------------
// addresses (they exist only inside the namespaces)

/**
 * IPv4 from 198.18.0.0/15 (benchmarking). IPv6 of the client side in ULA
 * fd00::/8; the server side in 2001:2::/48 (IPv6 benchmarking, RFC 5180):
 * ugate always bypasses fc00::/7 destinations, so a ULA server could never
 * be captured.
 */
export const ADDR = {
  client4: '198.18.1.2',
  /** A second client source, put in capture.excludeSrc by the tests. */
  clientExcluded4: '198.18.1.3',
  /** Its packets get ugate's mark in the router (markClients). */
  clientMarked4: '198.18.1.4',
  /** Its packets get another mark (markClients): still captured. */
  clientOtherMark4: '198.18.1.5',
  routerLan4: '198.18.1.1',
  routerWan4: '198.19.2.1',
  server4: '198.19.2.2',
  /** A second server address, put in capture.bypass by the tests. */
  serverBypass4: '198.19.2.3',

  client6: 'fd00:1::2',
  clientExcluded6: 'fd00:1::3',
  clientMarked6: 'fd00:1::4',
  clientOtherMark6: 'fd00:1::5',
  routerLan6: 'fd00:1::1',
  routerWan6: '2001:2:0:2::1',
  server6: '2001:2:0:2::2',
  serverBypass6: '2001:2:0:2::3',
} as const

/** Interface names, the same in every topology (each lives in its own namespace). */
export const IFACE = { clientLan: 'c-r', routerLan: 'r-c', routerWan: 'r-s', serverWan: 's-r' } as const

/** Host names the clients use (curl --resolve): the Host header and the SNI. */
export const HTTP_NAME = 'plain.test'
export const TLS_NAME = 'name.test'

/** Source CIDRs ugate's redirect listeners must accept (the default allow list has none of them). */
export const TEST_ALLOW = ['198.18.0.0/15', 'fd00::/8', '2001:2::/48', '127.0.0.0/8', '::1/128']

/** Name prefix of every namespace made by this process. */
export const NS_PREFIX = `ugt-${process.pid}-`
const NS_RE = /^ugt-(\d+)-/

// ---------------------------------------------------------------------------
// commands

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export const CMD_MS = 15_000

/** Run a command to completion (async; the event loop keeps reading ugate's stderr). */
export function run(argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const ms = opts.timeoutMs ?? CMD_MS
  return new Promise<RunResult>((resolve, reject) => {
    const p = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout!.setEncoding('utf8')
    p.stderr!.setEncoding('utf8')
    p.stdout!.on('data', (d: string) => (stdout += d))
    p.stderr!.on('data', (d: string) => (stderr += d))
    const timer = setTimeout(() => {
      if (p.pid !== undefined) p.kill('SIGKILL')
      reject(new Error(`timeout after ${ms}ms: ${argv.join(' ')}\nstderr: ${stderr}`))
    }, ms)
    p.once('error', (e) => {
      clearTimeout(timer)
      reject(new Error(`cannot run ${argv[0]}: ${e.message}`))
    })
    p.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
    p.stdin!.on('error', () => {})
    p.stdin!.end(opts.input ?? '')
  })
}

/** Run a command; throw (naming it and its stderr) unless it exits 0. */
export async function must(argv: string[], opts: { input?: string; what?: string } = {}): Promise<RunResult> {
  const r = await run(argv, opts)
  if (r.code !== 0) {
    throw new Error(
      `${opts.what ? opts.what + ': ' : ''}\`${argv.join(' ')}\` failed (exit ${r.code ?? r.signal}): ${r.stderr.trim()}`,
    )
  }
  return r
}

/** argv to run `argv` inside namespace ns. */
export function inNs(ns: string, argv: string[]): string[] {
  return ['ip', 'netns', 'exec', ns, ...argv]
}

/** Fail early, with the package to install, when a tool the capture tests need is missing. */
export function requireTools(): void {
  const tools: Array<[string, string]> = [
    ['ip', 'iproute2'],
    ['nft', 'nftables'],
    ['curl', 'curl'],
    ['openssl', 'openssl'],
  ]
  const path = (process.env.PATH ?? '').split(':').filter((d) => d !== '')
  for (const [cmd, pkg] of tools) {
    const found = path.some((d) => {
      try {
        accessSync(join(d, cmd), constants.X_OK)
        return true
      } catch {
        return false
      }
    })
    if (!found)
      throw new Error(`the capture tests need \`${cmd}\` (not in PATH): install it with apt-get install ${pkg}`)
  }
}

// ---------------------------------------------------------------------------
// namespaces: creation, cleanup

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function listNetns(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
  return (r.stdout ?? '')
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n !== '')
}

/** Kill what still runs in a namespace (our own processes), then remove it. Synchronous: also used at exit. */
function deleteNetnsSync(name: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).stdout ?? ''
  for (const p of pids.split(/\s+/).filter((x) => /^\d+$/.test(x))) {
    try {
      process.kill(Number(p), 'SIGKILL')
    } catch {
      /* gone */
    }
  }
  spawnSync('ip', ['netns', 'del', name])
  rmSync(netnsEtc(name), { recursive: true, force: true })
}

/** Files `ip netns exec` binds over /etc for processes of namespace ns (ip-netns(8)). */
function netnsEtc(ns: string): string {
  return join('/etc/netns', ns)
}

/**
 * The /etc/resolv.conf that getaddrinfo reads in processes started by
 * `ip netns exec ns` (e.g. a nameserver inside the namespace); removed with
 * the namespace.
 */
export function setResolvConf(ns: string, text: string): void {
  mkdirSync(netnsEtc(ns), { recursive: true })
  writeFileSync(join(netnsEtc(ns), 'resolv.conf'), text)
}

/**
 * Remove namespaces left by an earlier run of these tests that died before
 * its cleanup (its pid, in the name, is gone), with the processes it left
 * inside them, and its temporary directory.
 */
export function removeLeftovers(): string[] {
  const removed: string[] = []
  for (const name of listNetns()) {
    const m = NS_RE.exec(name)
    if (!m) continue
    const pid = Number(m[1])
    if (pid === process.pid || pidAlive(pid)) continue
    deleteNetnsSync(name)
    removed.push(name)
  }
  // ... and its temporary directory (ugate-capture-<pid>-XXXXXX).
  for (const d of readdirSync(tmpdir())) {
    const m = /^ugate-capture-(\d+)-/.exec(d)
    if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue
    rmSync(join(tmpdir(), d), { recursive: true, force: true })
    removed.push(join(tmpdir(), d))
  }
  return removed
}

/** Namespaces of this process not yet removed: the exit hook removes them. */
const live = new Set<string>()
let exitHook = false
function registerExitHook(): void {
  if (exitHook) return
  exitHook = true
  process.once('exit', () => {
    for (const name of live) deleteNetnsSync(name)
    live.clear()
  })
}

let seq = 0

/** One running helper process (a server) inside a namespace. */
interface Child {
  proc: ChildProcess
  closed: Promise<void>
}

export interface CurlRequest {
  /** Namespace the client runs in (default: the client namespace). */
  ns?: string
  url: string
  /** Source address (curl --interface). */
  src?: string
  /** curl --resolve HOST:PORT:ADDR (IPv6 in brackets). */
  resolve?: string
  /** POSTed and echoed back by the servers. */
  body: Buffer
  /** Extra curl options. */
  extra?: string[]
}

export interface CurlResult {
  /** curl's exit status (0 = the whole response arrived, HTTP status < 400). */
  code: number | null
  stderr: string
  /** HTTP status of the last response, 0 if none. */
  status: number
  /** Response headers, lower-case names. */
  headers: Record<string, string>
  body: Buffer
  argv: string[]
}

export interface Topology {
  client: string
  router: string
  server: string
  /** Temporary directory (configs, certificates, payloads), removed on teardown. */
  dir: string
  /** The test CA's certificate (PEM), for curl --cacert. */
  caFile: string
  /** Run argv inside a namespace. */
  exec(ns: string, argv: string[], opts?: { input?: string; timeoutMs?: number }): Promise<RunResult>
  /** `nft ARGS` in the router namespace (input for `-f -`). */
  nft(args: string[], input?: string): Promise<RunResult>
  /** curl from a namespace (default the client's) to the servers. */
  curl(req: CurlRequest): Promise<CurlResult>
  /** Write a JSON file into dir; returns its path. */
  writeJson(name: string, value: unknown): string
  /** `nft list ruleset` of the router (for failure messages). */
  ruleset(): Promise<string>
}

/**
 * Empty namespaces for a topology of the test's own (links, addresses and
 * routes are the test's: ipBatch), named `NS_PREFIX<tag><n>-<name>`, with a
 * temporary directory; removed with whatever runs in them on teardown, at
 * exit as a last resort, or by the next run (removeLeftovers).
 */
export async function createNamespaces<K extends string>(
  t: TestLike,
  tag: string,
  names: readonly K[],
): Promise<{ ns: Record<K, string>; dir: string }> {
  requireTools()
  const stale = removeLeftovers()
  if (stale.length > 0) t.comment(`removed what a crashed run left: ${stale.join(' ')}`)
  registerExitHook()
  const n = ++seq
  const ns = Object.fromEntries(names.map((k) => [k, `${NS_PREFIX}${tag}${n}-${k}`])) as Record<K, string>
  const all = Object.values<string>(ns)
  const dir = tempDir(t, `ugate-capture-${process.pid}-`)
  t.teardown(async () => {
    for (const x of all.filter((x) => live.has(x))) {
      deleteNetnsSync(x)
      live.delete(x)
    }
  })
  const made = await run(['ip', '-batch', '-'], { input: all.map((x) => `netns add ${x}\n`).join('') })
  for (const x of listNetns().filter((x) => all.includes(x))) live.add(x)
  if (made.code !== 0 || all.some((x) => !live.has(x))) {
    throw new Error(
      `cannot create the network namespaces ${all.join(' ')} (\`ip netns add\` exit ${made.code}: ` +
        `${made.stderr.trim()}); this test needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN) and a kernel with network namespaces`,
    )
  }
  return { ns, dir }
}

/**
 * Build client — router — server with addresses, routes and forwarding,
 * make the test CA and start the HTTP/HTTPS servers. Everything is undone
 * on teardown (LIFO: after ugate, which is started later, is killed).
 * Throws (a test failure, never a skip) if namespaces cannot be made.
 */
export async function createTopology(t: TestLike): Promise<Topology> {
  requireTools()
  const stale = removeLeftovers()
  if (stale.length > 0) t.comment(`removed what a crashed run left: ${stale.join(' ')}`)
  registerExitHook()

  const n = ++seq
  const client = `${NS_PREFIX}${n}-c`
  const router = `${NS_PREFIX}${n}-r`
  const server = `${NS_PREFIX}${n}-s`
  const dir = tempDir(t, `ugate-capture-${process.pid}-`)
  const children: Child[] = []

  t.teardown(async () => {
    for (const c of children) {
      if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL')
      await c.closed
    }
    for (const ns of [client, router, server]) {
      if (!live.has(ns)) continue
      await run(['ip', 'netns', 'del', ns])
      live.delete(ns)
    }
    const left = listNetns().filter((x) => x === client || x === router || x === server)
    for (const ns of left) deleteNetnsSync(ns)
  })

  const caFile = join(dir, 'ca.crt')
  const made = await run(['ip', '-batch', '-'], {
    input: [client, router, server].map((ns) => `netns add ${ns}\n`).join(''),
  })
  const mine = listNetns().filter((ns) => ns === client || ns === router || ns === server)
  for (const ns of mine) live.add(ns)
  if (made.code !== 0 || mine.length < 3) {
    throw new Error(
      `cannot create the network namespaces ${client} ${router} ${server} (\`ip netns add\` exit ${made.code}: ` +
        `${made.stderr.trim()}); the capture tests need root (CAP_SYS_ADMIN + CAP_NET_ADMIN) and a kernel with network namespaces`,
    )
  }
  // The servers start (Node takes a while) while the network is set up; they listen on the wildcard addresses.
  const servers = makeCertificates(dir).then(() => startServers(server, dir, children))
  servers.catch(() => {}) // awaited below
  // No duplicate address detection (addresses are usable at once: no
  // tentative state to wait for); the router forwards what ugate does not
  // capture. Set before the interfaces exist, so they inherit it.
  const noDad = 'for k in all default; do echo 0 > /proc/sys/net/ipv6/conf/$k/accept_dad; done'
  const forward = 'echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/ipv6/conf/all/forwarding'
  await Promise.all([
    must(inNs(client, ['sh', '-c', noDad])),
    must(inNs(server, ['sh', '-c', noDad])),
    must(inNs(router, ['sh', '-c', `${noDad} && ${forward}`])),
  ])
  const addr = (a: string, dev: string) => `addr add ${a} dev ${dev}${a.includes(':') ? ' nodad' : ''}`
  // One `ip -batch` per namespace. The veth pairs are made inside the router
  // namespace, their other ends put straight into the peer namespaces.
  await ipBatch(router, [
    'link set lo up',
    `link add ${IFACE.routerLan} type veth peer name ${IFACE.clientLan} netns ${client}`,
    `link add ${IFACE.routerWan} type veth peer name ${IFACE.serverWan} netns ${server}`,
    addr(`${ADDR.routerLan4}/24`, IFACE.routerLan),
    addr(`${ADDR.routerLan6}/64`, IFACE.routerLan),
    addr(`${ADDR.routerWan4}/24`, IFACE.routerWan),
    addr(`${ADDR.routerWan6}/64`, IFACE.routerWan),
    `link set ${IFACE.routerLan} up`,
    `link set ${IFACE.routerWan} up`,
  ])
  await Promise.all([
    ipBatch(client, [
      'link set lo up',
      ...[ADDR.client4, ADDR.clientExcluded4, ADDR.clientMarked4, ADDR.clientOtherMark4].map((a) =>
        addr(`${a}/24`, IFACE.clientLan),
      ),
      ...[ADDR.client6, ADDR.clientExcluded6, ADDR.clientMarked6, ADDR.clientOtherMark6].map((a) =>
        addr(`${a}/64`, IFACE.clientLan),
      ),
      `link set ${IFACE.clientLan} up`,
      `route add default via ${ADDR.routerLan4}`,
      `route add ::/0 via ${ADDR.routerLan6}`,
    ]),
    ipBatch(server, [
      'link set lo up',
      ...[ADDR.server4, ADDR.serverBypass4].map((a) => addr(`${a}/24`, IFACE.serverWan)),
      ...[ADDR.server6, ADDR.serverBypass6].map((a) => addr(`${a}/64`, IFACE.serverWan)),
      `link set ${IFACE.serverWan} up`,
      `route add default via ${ADDR.routerWan4}`,
      `route add ::/0 via ${ADDR.routerWan6}`,
    ]),
  ])
  await servers

  let req = 0
  const topo: Topology = {
    client,
    router,
    server,
    dir,
    caFile,
    exec: (ns, argv, opts) => run(inNs(ns, argv), opts),
    nft: (args, input) => run(inNs(router, ['nft', ...args]), input === undefined ? {} : { input }),
    writeJson(name, value) {
      const file = join(dir, name)
      writeFileSync(file, JSON.stringify(value, null, 2))
      return file
    },
    async ruleset() {
      const r = await run(inNs(router, ['nft', 'list', 'ruleset']))
      return r.stdout + r.stderr
    },
    async curl(q) {
      const i = ++req
      const inFile = join(dir, `req-${i}.bin`)
      const outFile = join(dir, `resp-${i}.bin`)
      const hdrFile = join(dir, `resp-${i}.hdr`)
      writeFileSync(inFile, q.body)
      const argv = [
        'curl',
        '-sS',
        '--globoff',
        '--fail',
        '--max-time',
        '10',
        '--connect-timeout',
        '5',
        '-H',
        'Expect:',
        '-H',
        'Content-Type: application/octet-stream',
        '--data-binary',
        `@${inFile}`,
        '-D',
        hdrFile,
        '-o',
        outFile,
        ...(q.src ? ['--interface', q.src] : []),
        ...(q.resolve ? ['--resolve', q.resolve] : []),
        ...(q.url.startsWith('https:') ? ['--cacert', caFile] : []),
        ...(q.extra ?? []),
        q.url,
      ]
      const r = await run(inNs(q.ns ?? client, argv))
      const headers: Record<string, string> = {}
      let status = 0
      let body = Buffer.alloc(0)
      try {
        for (const line of readFileSync(hdrFile, 'utf8').split(/\r?\n/)) {
          const s = /^HTTP\/\S+ (\d{3})/.exec(line)
          if (s) status = Number(s[1])
          const h = /^([^:\s]+):\s*(.*)$/.exec(line)
          if (h) headers[h[1]!.toLowerCase()] = h[2]!
        }
        body = readFileSync(outFile)
      } catch {
        /* no response */
      }
      return { code: r.code, stderr: r.stderr, status, headers, body, argv }
    },
  }
  return topo
}

/** Run `ip` commands inside a namespace in one process; throws naming the namespace and ip's error. */
export async function ipBatch(ns: string, commands: string[]): Promise<void> {
  await must(['ip', '-n', ns, '-batch', '-'], { input: commands.join('\n') + '\n', what: `setting up namespace ${ns}` })
}

/** A test CA and a server certificate for TLS_NAME signed by it (EC P-256, valid one day). */
async function makeCertificates(dir: string): Promise<void> {
  const f = (name: string) => join(dir, name)
  const what = 'making the test certificates'
  await must(
    [
      'openssl',
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      f('ca.key'),
      '-out',
      f('ca.crt'),
      '-days',
      '1',
      '-subj',
      '/CN=ugate test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    { what },
  )
  await must(
    [
      'openssl',
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      f('server.key'),
      '-out',
      f('server.csr'),
      '-subj',
      `/CN=${TLS_NAME}`,
    ],
    { what },
  )
  writeFileSync(
    f('server.ext'),
    `subjectAltName=DNS:${TLS_NAME}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`,
  )
  await must(
    [
      'openssl',
      'x509',
      '-req',
      '-in',
      f('server.csr'),
      '-CA',
      f('ca.crt'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-out',
      f('server.crt'),
      '-extfile',
      f('server.ext'),
    ],
    { what },
  )
}

/**
 * The servers: HTTP on :80 and HTTPS on :443, dual-stack on every address.
 * Each request's body is echoed; x-remote/x-local/x-host/x-sni/x-proto say
 * what the server saw. Prints `ready` once both listen.
 */
const SERVER_SCRIPT = `
import http from 'node:http'
import https from 'node:https'
import { readFileSync } from 'node:fs'

const [keyFile, certFile] = process.argv.slice(2)
const plain = (a) => String(a ?? '').replace(/^::ffff:/, '')
const handler = (proto) => (req, res) => {
  const parts = []
  req.on('data', (d) => parts.push(d))
  req.on('end', () => {
    const body = Buffer.concat(parts)
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': body.length,
      'x-proto': proto,
      'x-remote': plain(req.socket.remoteAddress),
      'x-local': plain(req.socket.localAddress),
      'x-host': req.headers.host ?? '-',
      'x-sni': req.socket.servername || '-',
    })
    res.end(body)
  })
}
const h = http.createServer(handler('http'))
const s = https.createServer({ key: readFileSync(keyFile), cert: readFileSync(certFile) }, handler('tls'))
let up = 0
const listening = () => { if (++up === 2) process.stdout.write('ready\\n') }
for (const srv of [h, s]) srv.on('error', (e) => { process.stderr.write(String(e) + '\\n'); process.exit(1) })
h.listen({ port: 80, host: '::' }, listening)
s.listen({ port: 443, host: '::' }, listening)
`

/** Start the servers in ns; the process goes into `children` (for teardown) as soon as it exists. */
async function startServers(ns: string, dir: string, children: Child[]): Promise<void> {
  const script = join(dir, 'servers.mjs')
  writeFileSync(script, SERVER_SCRIPT)
  // Without tap's NODE_OPTIONS (its loaders would slow the start down and track the child).
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  const proc = spawn(
    'ip',
    inNs(ns, [process.execPath, script, join(dir, 'server.key'), join(dir, 'server.crt')]).slice(1),
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    },
  )
  const closed = new Promise<void>((res) => proc.once('close', () => res()))
  children.push({ proc, closed })
  let out = ''
  let err = ''
  proc.stderr!.setEncoding('utf8')
  proc.stderr!.on('data', (d: string) => (err += d))
  proc.stdout!.setEncoding('utf8')
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`test servers not ready after ${CMD_MS}ms; stderr: ${err}`))
    }, CMD_MS)
    proc.stdout!.on('data', (d: string) => {
      out += d
      if (/^ready$/m.test(out)) {
        clearTimeout(timer)
        resolve()
      }
    })
    proc.once('error', (e) => {
      clearTimeout(timer)
      reject(new Error(`cannot start the test servers: ${e.message}`))
    })
    proc.once('close', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`test servers exited (${code ?? signal}) before ready; stderr: ${err}`))
    })
  })
}

// ---------------------------------------------------------------------------
// ugate's capture config and nft helpers

/** ugate's SO_MARK in these tests. */
export const UGATE_MARK = 255
/** Another mark: it must not stop the capture. */
export const OTHER_MARK = 254

export interface CaptureSettings {
  port: number
  bypass?: string[]
  excludeSrc?: string[]
  routerSelf?: boolean
  ipv6?: boolean
}

/**
 * A config with one dual-stack redirect listener ([::]: IPv4 arrives
 * v4-mapped) and capture on the router's LAN interface.
 */
export function captureConfig(s: CaptureSettings): Record<string, unknown> {
  return {
    log: { level: 'info' },
    relay: { idleTimeout: 60, shutdownGrace: 2 },
    dial: { connectTimeout: 5, mark: UGATE_MARK },
    listeners: [{ name: 'cap', type: 'redirect', listen: `[::]:${s.port}`, allow: TEST_ALLOW }],
    capture: {
      enabled: true,
      listener: 'cap',
      lanInterfaces: [IFACE.routerLan],
      ports: [80, 443],
      ipv6: s.ipv6 ?? true,
      routerSelf: s.routerSelf ?? false,
      bypass: s.bypass ?? [],
      excludeSrc: s.excludeSrc ?? [],
    },
  }
}

/**
 * The test's own table in the router: packets from the "marked" clients get
 * ugate's mark (or another one) before ugate's nat chain (priority dstnat)
 * sees them, as a policy-routing setup of the router would mark them.
 */
export function markClientsRuleset(): string {
  return [
    'table inet ugt_mark {',
    '\tchain pre {',
    '\t\ttype filter hook prerouting priority mangle; policy accept;',
    `\t\tip saddr ${ADDR.clientMarked4} meta mark set ${UGATE_MARK}`,
    `\t\tip6 saddr ${ADDR.clientMarked6} meta mark set ${UGATE_MARK}`,
    `\t\tip saddr ${ADDR.clientOtherMark4} meta mark set ${OTHER_MARK}`,
    `\t\tip6 saddr ${ADDR.clientOtherMark6} meta mark set ${OTHER_MARK}`,
    '\t}',
    '}',
    '',
  ].join('\n')
}

/** host:port as in ugate's log lines and URLs ([v6]:port). */
export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`
}

export type Proto = 'http' | 'tls'

export interface Probe {
  /** What the step checks, for assertion messages. */
  what: string
  proto: Proto
  /** Server address the client connects to. */
  dst: string
  /** Client source address (curl --interface); none from the router itself. */
  src?: string
  /** Namespace curl runs in (default the client's). */
  ns?: string
}

/** One probe per family and protocol, from the client to the server: what capture must carry. */
export const CLIENT_PROBES: readonly Probe[] = [
  { what: 'IPv4 HTTP', proto: 'http', src: ADDR.client4, dst: ADDR.server4 },
  { what: 'IPv4 TLS', proto: 'tls', src: ADDR.client4, dst: ADDR.server4 },
  { what: 'IPv6 HTTP', proto: 'http', src: ADDR.client6, dst: ADDR.server6 },
  { what: 'IPv6 TLS', proto: 'tls', src: ADDR.client6, dst: ADDR.server6 },
]

export interface ProbeResult {
  res: CurlResult
  payload: Buffer
  /** Original destination as ugate logs it: IP:PORT or [IP]:PORT. */
  dst: string
  /** Host/SNI name the client used. */
  name: string
}

/** One request by name (Host or SNI), resolved to p.dst, with a deterministic body that the server echoes. */
export async function probe(topo: Topology, p: Probe, payload: Buffer): Promise<ProbeResult> {
  const port = p.proto === 'tls' ? 443 : 80
  const name = p.proto === 'tls' ? TLS_NAME : HTTP_NAME
  const addr = p.dst.includes(':') ? `[${p.dst}]` : p.dst
  const req: CurlRequest = {
    url: `${p.proto === 'tls' ? 'https' : 'http'}://${name}/`,
    resolve: `${name}:${port}:${addr}`,
    body: payload,
  }
  if (p.src !== undefined) req.src = p.src
  if (p.ns !== undefined) req.ns = p.ns
  const res = await topo.curl(req)
  return { res, payload, dst: hostPort(p.dst, port), name }
}

/**
 * The response arrived whole (curl exit 0, HTTP 200, body = payload) and the
 * server saw the connection come from `remote`, to the address the client
 * dialed, with the client's Host/SNI. On failure the router's ruleset is
 * printed.
 */
export async function checkResponse(
  t: AssertLike,
  topo: Topology,
  p: Probe,
  r: ProbeResult,
  remote: string,
): Promise<boolean> {
  const { res } = r
  let ok = t.equal(res.code, 0, `${p.what}: curl succeeds`, { stderr: res.stderr, argv: res.argv.join(' ') })
  ok = t.equal(res.status, 200, `${p.what}: HTTP 200`) && ok
  ok = t.equal(res.body.length, r.payload.length, `${p.what}: whole response body (${r.payload.length} bytes)`) && ok
  ok = t.ok(res.body.equals(r.payload), `${p.what}: response body intact (echo of the request body)`) && ok
  const nameHeader = p.proto === 'tls' ? 'x-sni' : 'x-host'
  const keys = ['x-proto', 'x-remote', 'x-local', nameHeader]
  const seen = Object.fromEntries(keys.map((k) => [k, res.headers[k]]))
  ok =
    t.same(
      seen,
      { 'x-proto': p.proto, 'x-remote': remote, 'x-local': p.dst, [nameHeader]: r.name },
      `${p.what}: server saw ${remote} connect to ${p.dst} for ${r.name}`,
    ) && ok
  if (!ok) t.comment(`router nft ruleset:\n${await topo.ruleset()}`)
  return ok
}

/** After ugate stopped: `nft list table inet ugate` fails in the router (the table is gone). */
export async function checkTableGone(t: AssertLike, topo: Topology, when: string): Promise<void> {
  const r = await topo.nft(['list', 'table', 'inet', 'ugate'])
  t.not(r.code, 0, `${when}: nft list table inet ugate fails (table gone)`, { stdout: r.stdout, stderr: r.stderr })
  t.match(r.stderr, /No such file or directory/, `${when}: nft says the table does not exist`)
}
