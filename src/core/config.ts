// The typed config and its one validator. Input is plain JSON (seconds);
// output is typed, with defaults filled in and durations in milliseconds.
// Every error names the path and the bad value.

import {
  type Endpoint,
  formatEndpoint,
  formatHostPort,
  hostNameProblem,
  listenAddressesClash,
  parseEndpoint,
} from './address.js'
import { AddressError, ConfigError, show } from './errors.js'
import { LOG_LEVELS, type LogLevel, isLogLevel } from './log.js'
import { type CaptureOptions, nftRuleset } from './nft.js'
import { type RuleSpec, compileRules, parseRulesJson } from './rules/index.js'
import { ipKey, isIPv6, isIpLiteral, isWildcard, parseCidr } from './ip.js'
import { IDENTITY_DEFAULTS, IDENTITY_FILES, nodeIdProblem, spiffeIdProblem, trustDomainProblem } from './identity.js'

export interface Config {
  log: {
    level: LogLevel
    /** Syslog socket (RFC 3164 datagrams, facility daemon, ident ugate); '' = lines to stderr. */
    syslog: string
  }
  relay: {
    splice: boolean
    /** 0 = never close for idleness. */
    idleTimeoutMs: number
    shutdownGraceMs: number
  }
  dial: {
    connectTimeoutMs: number
    /** SO_MARK of outbound sockets; 0 = none. */
    mark: number
  }
  limits: {
    /** Live connections at once, over all listeners; 0 = no limit. */
    maxConnections: number
    /** Live connections from one source IP; 0 = no limit. */
    maxPerSource: number
    /** Time a client has to finish its handshake (SOCKS, HTTP request head). */
    handshakeTimeoutMs: number
  }
  sniff: {
    /** Bytes read at most before routing a captured connection. */
    maxBytes: number
    /** Time waited at most for them. */
    timeoutMs: number
  }
  admin: {
    /** Unix socket path for `ugate ctl` and the LuCI status page; '' = none. */
    socket: string
    /** The admin HTTP server (Clash API, metrics); null = off. */
    listen: Endpoint | null
    /** Bearer token of the admin HTTP server; '' = none (loopback only). */
    secret: string
  }
  /** ubusd's socket, where ugate registers its object `ugate`; '' = not on ubus. */
  ubus: { socket: string }
  listeners: ListenerConfig[]
  upstreams: UpstreamConfig[]
  /** Ordered; first match wins; default direct. */
  rules: RuleSpec[]
  capture: CaptureConfig
  /** The mesh identity (mutual TLS for HBONE); null: no `mesh` section. */
  mesh: MeshConfig | null
  /** Relays this gate parks connections at, to be reached by SNI from behind NAT. */
  sniRelay: SniRelayConfig[]
  /** Public gates this gate keeps a reverse tunnel to, to be reached through them from behind NAT. */
  reverse: ReverseConfig[]
}

/**
 * Who this gate is in the mesh and whom it trusts: Istio's identity files
 * (absolute paths, each defaulting to its name in identityDir).
 */
export interface MeshConfig {
  identityDir: string
  /** cert-chain.pem: the leaf (P-256 key, SPIFFE URI SAN) first. */
  certChain: string
  key: string
  /** root-cert.pem: the only trust anchors for peers. */
  rootCert: string
  /** Peers' SPIFFE ids must be spiffe://<trustDomain>/...; '' = any id the roots vouch for. */
  trustDomain: string
  /** The short form of node names, `<NODEID>.<nodeSuffix>` (lower case); '' = only full names. */
  nodeSuffix: string
}

/** A public relay this (NAT-ed) gate keeps parked connections at (docs/mesh.md). */
export interface SniRelayConfig {
  /** The `listener` the rules see for connections that come through it. */
  name: string
  /** The relay's park listener. */
  relay: Endpoint
  /** The relay's SPIFFE id; '' = any id of mesh.trustDomain (any the roots vouch for when that is ''). */
  relayId: string
  /** Names registered besides this node's id (the relay must grant them). */
  names: string[]
  /** Parked connections at rest, and at most under demand. */
  pool: number
  maxPool: number
  /** Reconnect backoff: first delay, and the cap. */
  retryMs: number
  retryMaxMs: number
}

/**
 * A public gate this (NAT-ed) gate keeps one reverse tunnel to (docs/mesh.md):
 * it dials the gate's hbone listener, and the public gate opens CONNECT
 * streams on it that this gate serves like its own hbone listener's.
 */
export interface ReverseConfig extends PingTiming {
  /** The `listener` the rules see for streams that come through it. */
  name: string
  /** The public gate's hbone listener (a bare IP: port 15008). */
  relay: Endpoint
  /** The public gate's SPIFFE id; '' = any id of mesh.trustDomain. */
  relayId: string
  /** Reconnect backoff: first delay, and the cap (each delay jittered to 50-100 %). */
  retryMs: number
  retryMaxMs: number
}

/** A mesh connection's keep-alive (an hbone listener's or upstream's connections, a reverse tunnel). */
export interface PingTiming {
  /** A PING this often; no ACK within pingTimeoutMs of one: the connection is dead. */
  pingIntervalMs: number
  pingTimeoutMs: number
}

export interface User {
  username: string
  password: string
}

/** An upstream proxy that rules can chain through ("upstream:NAME"). */
export type UpstreamConfig = ProxyUpstreamConfig | HboneUpstreamConfig

export interface ProxyUpstreamConfig {
  name: string
  type: 'socks5' | 'http'
  server: Endpoint
  username?: string
  password?: string
}

/**
 * A peer gate (or ztunnel) reached through HBONE: HTTP/2 CONNECT over mutual
 * TLS with the mesh identity, on pooled connections.
 */
export interface HboneUpstreamConfig extends PingTiming {
  name: string
  type: 'hbone'
  /** The peer's HBONE port: an IP literal (default port 15008); null = only through a reverse tunnel. */
  server: Endpoint | null
  /**
   * The peer's node id; '' = any. With it (or with identity), a reverse
   * tunnel the peer registered at this gate is used when there is one.
   */
  node: string
  /** The SPIFFE id the peer must present; '' = any id of trustDomain (or of the mesh's). */
  identity: string
  /**
   * The trust domain the peer's id must be in, in place of the mesh's (a
   * peer of another domain whose CA is among the roots); '' = the mesh's own.
   */
  trustDomain: string
  /**
   * A relay for routing by node name (docs/mesh.md): a node this gate knows no
   * other way to is reached with double HBONE through this peer. Needs a server.
   */
  relay: boolean
}

/** Transparent capture with nftables (see src/core/nft.ts). */
export interface CaptureConfig {
  enabled: boolean
  /** The listener captured TCP goes to: a redirect listener (REDIRECT), or a tproxy one with 'tcp' (TPROXY). */
  listener: string
  /** Also capture UDP (all ports but 53) with TPROXY, to the tproxy listener `udpListener`. */
  udp: boolean
  udpListener: string
  /** fwmark of TPROXYed packets and the routing table that delivers them locally. */
  tproxyMark: number
  tproxyTable: number
  lanInterfaces: string[]
  routerSelf: boolean
  ipv6: boolean
  ports: number[]
  bypass: string[]
  includeSrc: string[]
  excludeSrc: string[]
  includeMac: string[]
  excludeMac: string[]
  /** Redirect LAN clients' DNS (port 53, UDP and TCP) to the dns listener `dnsListener`. */
  dns: boolean
  dnsListener: string
}

export interface ListenerCommon {
  name: string
  listen: Endpoint
  backlog: number
  /** Source CIDRs allowed to connect; others are closed and logged. */
  allow: string[]
}

/** Relays every accepted connection to one fixed target. */
export interface ForwardListenerConfig extends ListenerCommon {
  type: 'forward'
  target: Endpoint
  /** The upstream (upstreams[].name) the target is dialed through, as a rule's "upstream:NAME"; '' = directly. */
  upstream: string
}

/** SOCKS4/4a/5 (`socks`), HTTP proxy (`http`), or both on one port (`mixed`). */
export interface ProxyListenerConfig extends ListenerCommon {
  type: 'socks' | 'http' | 'mixed'
  /** When non-empty, clients must authenticate (SOCKS5 user/pass, HTTP Basic). */
  users: User[]
  /** socks and mixed: a SOCKS5 UDP association without datagrams this long ends. */
  udpIdleTimeoutMs: number
}

/**
 * What serving an HBONE tunnel's CONNECTs reads: each :authority is routed
 * like any connection. An hbone listener's tunnels, and the reverse tunnels
 * this gate dialed (src/io/reverse.ts: a pseudo listener, whose keep-alive
 * is its ReverseConfig's).
 */
export interface HboneServedConfig extends ListenerCommon {
  type: 'hbone'
  /** When non-empty, only these peer SPIFFE ids may open streams (others get 401). */
  peers: string[]
  /** SPIFFE ids that may register a reverse tunnel here (ALPN ugate-rev); [] = none: off. */
  reverse: string[]
}

/**
 * HBONE (Istio ambient's HTTP/2 CONNECT over mutual TLS, port 15008): also
 * the keep-alive of the connections it accepts.
 */
export interface HboneListenerConfig extends HboneServedConfig, PingTiming {}

/** Transparent TCP: the destination comes from SO_ORIGINAL_DST (nftables REDIRECT). */
export interface RedirectListenerConfig extends ListenerCommon {
  type: 'redirect'
}

/**
 * What serving a TLS connection routed by its sniffed server name reads: an
 * sni listener's, and the connections an SNI relay paired with this gate's
 * parked ones (src/io/sni-relay.ts: a pseudo listener, which pairs nothing
 * and dials port 443).
 */
export interface SniServedConfig extends ListenerCommon {
  type: 'sni'
}

/** TLS passthrough routed by SNI, plain HTTP routed by Host. */
export interface SniListenerConfig extends SniServedConfig {
  /** Port dialed for a TLS name (default 443) and for an HTTP Host without a port (default 80). */
  tlsPort: number
  httpPort: number
  /** The park listener whose gates this listener's TLS names go to ('' = route by the rules). */
  pair: string
  /** Time an incoming connection waits for a parked one; then it is refused. */
  pairTimeoutMs: number
  /** Incoming connections waiting at once, at most; more are refused at once. */
  maxWaiting: number
}

/** The relay end of relay over SNI: parks NAT-ed gates' registered connections. */
export interface ParkListenerConfig extends ListenerCommon {
  type: 'park'
  /** SPIFFE id → names (exact, or "*.suffix") that gate may register besides its node id. */
  grants: Record<string, string[]>
  /** Parked connections one gate may hold. */
  maxParked: number
}

/** One upstream resolver of a dns listener. */
export interface DnsServer {
  /** 'udp': UDP, again over TCP when truncated; 'tls': DNS over TLS (RFC 7858), "tls://…". */
  transport: 'udp' | 'tls'
  /** An IP literal (a resolver cannot resolve its own resolver); port 53, or 853 for tls. */
  endpoint: Endpoint
  /** tls: the name the server's certificate must carry (sent as SNI); '' = its address (an IP SAN). */
  tlsName: string
}

/** A DNS server (UDP and TCP on one address) forwarding to `servers`, with cache, static names and the rules. */
export interface DnsListenerConfig extends ListenerCommon {
  type: 'dns'
  /** Upstream resolvers, tried in order. */
  servers: DnsServer[]
  /** PEM CA bundle that tls servers' certificates are verified against. */
  caBundle: string
  /** Static names → addresses (A/AAAA answered without an upstream). */
  hosts: Record<string, string[]>
  /** What a rejected name gets: these addresses (by family), or NXDOMAIN when empty. */
  rejectAddresses: string[]
  /** Time one upstream gets per query before the next is asked. */
  timeoutMs: number
  /** Answers kept at most; 0 = no cache. */
  cacheSize: number
}

/**
 * Transparent UDP (nftables TPROXY): the destination comes with each datagram
 * (IP_ORIGDSTADDR); one flow per client address and port (native/udp.c).
 * With 'tcp' also a transparent TCP listener on the same address and port:
 * a connection's destination is its socket's local address (no conntrack
 * NAT), the alternative to a redirect listener for capture.listener.
 */
export interface TproxyListenerConfig extends ListenerCommon {
  type: 'tproxy'
  /** What it takes: 'udp' (default), 'tcp' or both. */
  networks: Network[]
  /** A flow without traffic this long ends; flows to port 53 use udpDnsIdleTimeoutMs. */
  udpIdleTimeoutMs: number
  udpDnsIdleTimeoutMs: number
  /** Over this many flows, the least recently active one is evicted. */
  maxFlows: number
}

export type Network = 'tcp' | 'udp'

/** Discriminated on `type`; a new listener type adds a member here and a parser below. */
export type ListenerConfig =
  | ForwardListenerConfig
  | ProxyListenerConfig
  | RedirectListenerConfig
  | SniListenerConfig
  | DnsListenerConfig
  | TproxyListenerConfig
  | HboneListenerConfig
  | ParkListenerConfig
export type ListenerType = ListenerConfig['type']

/** What a connection's listener is: a configured one, or the pseudo listener of a relay this gate dialed. */
export type ServedListener = ListenerConfig | HboneServedConfig | SniServedConfig

/** The accounts a listener asks clients for; none for types without authentication. */
export function listenerUsers(l: ServedListener): readonly User[] {
  return l.type === 'socks' || l.type === 'http' || l.type === 'mixed' ? l.users : []
}

/** Defaults of the JSON config (seconds). */
const DEFAULTS = {
  logLevel: 'info' as LogLevel,
  splice: true,
  idleTimeout: 900,
  shutdownGrace: 5,
  connectTimeout: 10,
  mark: 0,
  backlog: 511,
  maxConnections: 1024,
  maxPerSource: 256,
  handshakeTimeout: 10,
  sniffMaxBytes: 16384,
  sniffTimeout: 0.3,
  dnsTimeout: 2,
  dnsCacheSize: 4096,
  /** Where OpenWrt's ca-bundle and Debian's ca-certificates put the system's CAs. */
  caBundle: '/etc/ssl/certs/ca-certificates.crt',
  udpIdleTimeout: 60,
  udpDnsIdleTimeout: 10,
  maxFlows: 4096,
  /** "ug" in ASCII: a mark and table number unlikely to clash with fw4 or mwan3. */
  tproxyMark: 0x7567,
  tproxyTable: 0x7567,
  /** Loopback, RFC 1918 and ULA: a listener never serves the WAN unless told to. */
  allow: ['127.0.0.0/8', '::1/128', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
}

export interface SecondsRange {
  min: number
  max: number
  note?: string
}

/** Accepted ranges of the duration settings, shared with the CLI flags. */
export const SECONDS: Record<
  | 'idleTimeout'
  | 'shutdownGrace'
  | 'connectTimeout'
  | 'handshakeTimeout'
  | 'sniffTimeout'
  | 'dnsTimeout'
  | 'udpIdleTimeout'
  | 'pairTimeout'
  | 'retry'
  | 'ping',
  SecondsRange
> = {
  // The upper bounds keep milliseconds within a signed 32-bit timer value.
  idleTimeout: { min: 0, max: 2147483, note: '0 = never' },
  shutdownGrace: { min: 0, max: 3600 },
  connectTimeout: { min: 0.001, max: 3600 },
  handshakeTimeout: { min: 0.001, max: 3600 },
  sniffTimeout: { min: 0.001, max: 60 },
  dnsTimeout: { min: 0.001, max: 60 },
  udpIdleTimeout: { min: 0.001, max: 86400 },
  pairTimeout: { min: 0.001, max: 60 },
  retry: { min: 0.01, max: 3600 },
  // HBONE PINGs go out on the relay's 1 s tick: shorter values mean "every tick".
  ping: { min: 0.1, max: 3600 },
}

export function inSecondsRange(v: unknown, range: SecondsRange): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= range.min && v <= range.max
}

/** "a number of seconds from 0 to 3600", for error messages. */
export function describeSeconds(range: SecondsRange): string {
  const note = range.note ? ` (${range.note})` : ''
  return `a number of seconds from ${range.min} to ${range.max}${note}`
}

const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/

/** JSON text → plain value; a syntax error names the source (a file name). */
export function parseConfigText(text: string, source: string): unknown {
  try {
    return JSON.parse(text.replace(/^\uFEFF/, ''))
  } catch (e) {
    throw new ConfigError(source, `invalid JSON: ${e instanceof Error ? e.message : String(e)}`)
  }
}

/** Validate a plain JSON-like value and fill in defaults; throws ConfigError. */
export function validateConfig(input: unknown): Config {
  const root = object(input, '')
  checkKeys(root, '', [
    'log',
    'relay',
    'dial',
    'limits',
    'sniff',
    'admin',
    'ubus',
    'listeners',
    'upstreams',
    'rules',
    'capture',
    'mesh',
    'sniRelay',
    'reverse',
  ])

  const log = object(given(root.log, {}), 'log')
  checkKeys(log, 'log', ['level', 'syslog'])
  const relay = object(given(root.relay, {}), 'relay')
  checkKeys(relay, 'relay', ['splice', 'idleTimeout', 'shutdownGrace'])
  const dial = object(given(root.dial, {}), 'dial')
  checkKeys(dial, 'dial', ['connectTimeout', 'mark'])
  const limits = object(given(root.limits, {}), 'limits')
  checkKeys(limits, 'limits', ['maxConnections', 'maxPerSource', 'handshakeTimeout'])
  const sniff = object(given(root.sniff, {}), 'sniff')
  checkKeys(sniff, 'sniff', ['maxBytes', 'timeout'])
  const admin = object(given(root.admin, {}), 'admin')
  checkKeys(admin, 'admin', ['socket', 'listen', 'secret'])
  const ubus = object(given(root.ubus, {}), 'ubus')
  checkKeys(ubus, 'ubus', ['socket'])

  const config: Config = {
    log: {
      level: logLevel(given(log.level, DEFAULTS.logLevel), 'log.level'),
      syslog: socketPath(given(log.syslog, ''), 'log.syslog'),
    },
    relay: {
      splice: boolean(given(relay.splice, DEFAULTS.splice), 'relay.splice'),
      idleTimeoutMs: ms(given(relay.idleTimeout, DEFAULTS.idleTimeout), 'relay.idleTimeout', SECONDS.idleTimeout),
      shutdownGraceMs: ms(
        given(relay.shutdownGrace, DEFAULTS.shutdownGrace),
        'relay.shutdownGrace',
        SECONDS.shutdownGrace,
      ),
    },
    dial: {
      connectTimeoutMs: ms(
        given(dial.connectTimeout, DEFAULTS.connectTimeout),
        'dial.connectTimeout',
        SECONDS.connectTimeout,
      ),
      mark: integer(given(dial.mark, DEFAULTS.mark), 'dial.mark', 0, 0xffffffff),
    },
    limits: {
      maxConnections: integer(
        given(limits.maxConnections, DEFAULTS.maxConnections),
        'limits.maxConnections',
        0,
        1000000,
      ),
      maxPerSource: integer(given(limits.maxPerSource, DEFAULTS.maxPerSource), 'limits.maxPerSource', 0, 1000000),
      handshakeTimeoutMs: ms(
        given(limits.handshakeTimeout, DEFAULTS.handshakeTimeout),
        'limits.handshakeTimeout',
        SECONDS.handshakeTimeout,
      ),
    },
    sniff: {
      maxBytes: integer(given(sniff.maxBytes, DEFAULTS.sniffMaxBytes), 'sniff.maxBytes', 64, 65536),
      timeoutMs: ms(given(sniff.timeout, DEFAULTS.sniffTimeout), 'sniff.timeout', SECONDS.sniffTimeout),
    },
    admin: adminConfig(admin),
    ubus: { socket: socketPath(given(ubus.socket, ''), 'ubus.socket') },
    listeners: listeners(root.listeners),
    upstreams: upstreams(given(root.upstreams, [])),
    rules: rules(given(root.rules, [])),
    capture: capture(given(root.capture, {})),
    mesh: root.mesh === undefined || root.mesh === null ? null : mesh(root.mesh),
    sniRelay: sniRelays(given(root.sniRelay, [])),
    reverse: reverseTunnels(given(root.reverse, [])),
  }
  checkReferences(config)
  return config
}

// ---- upstreams, rules, capture ---------------------------------------------------------

function upstreams(value: unknown): UpstreamConfig[] {
  const list = array(value, 'upstreams').map((v, i): UpstreamConfig => {
    const path = `upstreams[${i}]`
    const obj = object(v, path)
    const type = required(obj, 'type', path)
    if (type === 'hbone') return hboneUpstream(obj, path)
    checkKeys(obj, path, ['name', 'type', 'server', 'username', 'password'])
    if (type !== 'socks5' && type !== 'http')
      throw new ConfigError(`${path}.type`, `${show(type)} is not "socks5", "http" or "hbone"`)
    const up: ProxyUpstreamConfig = {
      name: name(required(obj, 'name', path), `${path}.name`),
      type,
      server: endpoint(required(obj, 'server', path), `${path}.server`, 'target'),
    }
    if (obj.username !== undefined || obj.password !== undefined) {
      up.username = credential(obj.username, `${path}.username`)
      up.password = credential(obj.password, `${path}.password`)
    }
    return up
  })
  list.forEach((u, i) => {
    const j = list.findIndex((o) => o.name === u.name)
    if (j < i) throw new ConfigError(`upstreams[${i}].name`, `${show(u.name)} is already the name of upstreams[${j}]`)
  })
  return list
}

/** The HBONE port; `<node name>:15008` is also a node's own HBONE endpoint (double HBONE, docs/mesh.md). */
export const HBONE_PORT = 15008

function hboneUpstream(obj: Record<string, unknown>, path: string): HboneUpstreamConfig {
  checkKeys(obj, path, ['name', 'type', 'server', 'identity', 'trustDomain', 'node', 'relay', ...PING_KEYS])
  const identity = obj.identity === undefined || obj.identity === '' ? '' : spiffeId(obj.identity, `${path}.identity`)
  const node = given(obj.node, '')
  const nodeProblem = typeof node !== 'string' ? 'is not a string' : node === '' ? null : nodeIdProblem(node)
  if (nodeProblem !== null) throw new ConfigError(`${path}.node`, `${show(node)} ${nodeProblem}`)
  // Without a server only a reverse tunnel reaches the peer: it must be named.
  const server =
    obj.server === undefined && (identity !== '' || node !== '')
      ? null
      : hboneServer(required(obj, 'server', path), path)
  const tdValue = given(obj.trustDomain, '')
  const tdProblem =
    typeof tdValue !== 'string' ? 'is not a string' : tdValue === '' ? null : trustDomainProblem(tdValue)
  if (tdProblem !== null) throw new ConfigError(`${path}.trustDomain`, `${show(tdValue)} ${tdProblem}`)
  const td = tdValue as string
  if (identity !== '' && td !== '' && !identity.startsWith(`spiffe://${td}/`))
    throw new ConfigError(`${path}.identity`, `${show(identity)} is not in trustDomain ${show(td)}`)
  const relay = boolean(given(obj.relay, false), `${path}.relay`)
  if (relay && server === null)
    throw new ConfigError(`${path}.relay`, 'a relay needs a server (its streams are dialed, not on a reverse tunnel)')
  return {
    name: name(required(obj, 'name', path), `${path}.name`),
    type: 'hbone',
    server,
    node: node as string,
    identity,
    trustDomain: td,
    relay,
    ...pingTiming(obj, path),
  }
}

const PING_KEYS = ['pingInterval', 'pingTimeout']

/** The keep-alive keys of obj (an hbone listener or upstream, a reverse tunnel) at path. */
function pingTiming(obj: Record<string, unknown>, path: string): PingTiming {
  // ztunnel's: a PING every 10 s, dead after 20 s without its ACK.
  return {
    pingIntervalMs: ms(given(obj.pingInterval, 10), `${path}.pingInterval`, SECONDS.ping),
    pingTimeoutMs: ms(given(obj.pingTimeout, 20), `${path}.pingTimeout`, SECONDS.ping),
  }
}

/** An hbone peer's address: IP:PORT, or a bare IP for the HBONE port. */
function hboneServer(text: unknown, path: string): Endpoint {
  // A bare host name: the same answer as a name with a port (HBONE peers are addresses).
  const server =
    typeof text === 'string' && !/[:\]]/.test(text) && !isIpLiteral(text)
      ? null
      : endpoint(withHbonePort(text), `${path}.server`, 'target')
  if (server === null || !isIpLiteral(server.host))
    throw new ConfigError(
      `${path}.server`,
      `${show(text)} is not an IP address: an hbone peer is given as IP or IP:PORT`,
    )
  return server
}

/** A bare IP means the HBONE port. */
function withHbonePort(text: unknown): unknown {
  return typeof text === 'string' ? withDefaultPort(text, HBONE_PORT) : text
}

/** A bare IP ("9.9.9.9", "2620:fe::fe" or "[2620:fe::fe]") with `port`; any other text as it is. */
function withDefaultPort(text: string, port: number): string {
  const bracketed = text.startsWith('[') && text.endsWith(']')
  const ip = bracketed ? text.slice(1, -1) : text
  return (bracketed ? isIPv6(ip) : isIpLiteral(ip)) ? formatHostPort(ip, port) : text
}

/** spiffe://TD/ns/NS/sa/SA, as peers present it in their certificate's URI SAN. */
function spiffeId(v: unknown, path: string): string {
  const problem = spiffeIdProblem(v)
  if (problem !== null) throw new ConfigError(path, `${show(v)} ${problem}`)
  return v as string
}

function sniRelays(value: unknown): SniRelayConfig[] {
  const list = array(value, 'sniRelay').map((v, i): SniRelayConfig => {
    const path = `sniRelay[${i}]`
    const obj = object(v, path)
    checkKeys(obj, path, ['name', 'relay', 'relayId', 'names', 'pool', 'maxPool', 'retry', 'retryMax'])
    const pool = integer(given(obj.pool, 2), `${path}.pool`, 1, 64)
    const relayId = given(obj.relayId, '')
    if (relayId !== '') spiffeId(relayId, `${path}.relayId`)
    const names = array(given(obj.names, []), `${path}.names`).map((n, j) => {
      const problem = typeof n === 'string' ? hostNameProblem(n) : 'not a string'
      if (problem !== null) throw new ConfigError(`${path}.names[${j}]`, `${show(n)} is not a host name: ${problem}`)
      return (n as string).toLowerCase()
    })
    const retryMs = ms(given(obj.retry, 0.5), `${path}.retry`, SECONDS.retry)
    return {
      name: name(required(obj, 'name', path), `${path}.name`),
      relay: endpoint(required(obj, 'relay', path), `${path}.relay`, 'target'),
      relayId: relayId as string,
      names,
      pool,
      maxPool: integer(given(obj.maxPool, Math.max(16, pool)), `${path}.maxPool`, pool, 1024),
      retryMs,
      retryMaxMs: Math.max(retryMs, ms(given(obj.retryMax, 30), `${path}.retryMax`, SECONDS.retry)),
    }
  })
  list.forEach((r, i) => {
    const j = list.findIndex((o) => o.name === r.name)
    if (j < i) throw new ConfigError(`sniRelay[${i}].name`, `${show(r.name)} is already the name of sniRelay[${j}]`)
  })
  return list
}

function reverseTunnels(value: unknown): ReverseConfig[] {
  const list = array(value, 'reverse').map((v, i): ReverseConfig => {
    const path = `reverse[${i}]`
    const obj = object(v, path)
    checkKeys(obj, path, ['name', 'relay', 'relayId', 'retry', 'retryMax', ...PING_KEYS])
    const relayId = given(obj.relayId, '')
    if (relayId !== '') spiffeId(relayId, `${path}.relayId`)
    const text = required(obj, 'relay', path)
    const retryMs = ms(given(obj.retry, 0.5), `${path}.retry`, SECONDS.retry)
    return {
      name: name(required(obj, 'name', path), `${path}.name`),
      // A name is resolved at each attempt.
      relay: endpoint(withHbonePort(text), `${path}.relay`, 'target'),
      relayId: relayId as string,
      retryMs,
      retryMaxMs: Math.max(retryMs, ms(given(obj.retryMax, 30), `${path}.retryMax`, SECONDS.retry)),
      ...pingTiming(obj, path),
    }
  })
  list.forEach((r, i) => {
    const j = list.findIndex((o) => o.name === r.name)
    if (j < i) throw new ConfigError(`reverse[${i}].name`, `${show(r.name)} is already the name of reverse[${j}]`)
  })
  return list
}

function rules(value: unknown): RuleSpec[] {
  const specs = parseRulesJson(value, 'rules')
  compileRules(specs) // every value checked here, not at the first connection
  return specs
}

function capture(value: unknown): CaptureConfig {
  const obj = object(value, 'capture')
  checkKeys(obj, 'capture', [
    'enabled',
    'listener',
    'udp',
    'udpListener',
    'tproxyMark',
    'tproxyTable',
    'lanInterfaces',
    'routerSelf',
    'ipv6',
    'ports',
    'bypass',
    'includeSrc',
    'excludeSrc',
    'includeMac',
    'excludeMac',
    'dns',
    'dnsListener',
  ])
  const strs = (key: string, fallback: string[]): string[] =>
    array(given(obj[key], fallback), `capture.${key}`).map((v, i) => {
      if (typeof v !== 'string') throw new ConfigError(`capture.${key}[${i}]`, `${show(v)} is not a string`)
      return v
    })
  const ports = array(given(obj.ports, [80, 443]), 'capture.ports').map((v, i) =>
    integer(v, `capture.ports[${i}]`, 1, 65535),
  )
  const listenerName = given(obj.listener, '')
  if (typeof listenerName !== 'string')
    throw new ConfigError('capture.listener', `${show(listenerName)} is not a listener name`)
  const dnsListener = given(obj.dnsListener, '')
  if (typeof dnsListener !== 'string')
    throw new ConfigError('capture.dnsListener', `${show(dnsListener)} is not a listener name`)
  const udpListener = given(obj.udpListener, '')
  if (typeof udpListener !== 'string')
    throw new ConfigError('capture.udpListener', `${show(udpListener)} is not a listener name`)
  return {
    enabled: boolean(given(obj.enabled, false), 'capture.enabled'),
    listener: listenerName,
    udp: boolean(given(obj.udp, false), 'capture.udp'),
    udpListener,
    tproxyMark: integer(given(obj.tproxyMark, DEFAULTS.tproxyMark), 'capture.tproxyMark', 1, 0xffffffff),
    tproxyTable: integer(given(obj.tproxyTable, DEFAULTS.tproxyTable), 'capture.tproxyTable', 1, 0x7fffffff),
    lanInterfaces: strs('lanInterfaces', ['br-lan']),
    routerSelf: boolean(given(obj.routerSelf, false), 'capture.routerSelf'),
    ipv6: boolean(given(obj.ipv6, true), 'capture.ipv6'),
    ports,
    bypass: strs('bypass', []),
    includeSrc: strs('includeSrc', []),
    excludeSrc: strs('excludeSrc', []),
    includeMac: strs('includeMac', []),
    excludeMac: strs('excludeMac', []),
    dns: boolean(given(obj.dns, false), 'capture.dns'),
    dnsListener,
  }
}

/** Captured TCP goes to a tproxy listener (TPROXY) rather than a redirect one. */
export function captureTcpTproxy(config: Config): boolean {
  return config.listeners.find((l) => l.name === config.capture.listener)?.type === 'tproxy'
}

/**
 * The capture options for nftRuleset, CIDR lists split by family. redirectPort
 * is capture.listener's port (a tproxy listener's with TPROXY TCP capture).
 */
export function captureOptions(config: Config, redirectPort: number, dnsPort = 0, tproxyPort = 0): CaptureOptions {
  const c = config.capture
  const byFamily = (list: string[], family: 4 | 6) => list.filter((x) => parseCidr(x)?.family === family)
  return {
    redirectPort,
    dnsPort: c.dns ? dnsPort : 0,
    ...(c.udp ? { udp: { port: tproxyPort, mark: c.tproxyMark, table: c.tproxyTable } } : {}),
    ...(captureTcpTproxy(config)
      ? { tcpTproxy: { port: redirectPort, mark: c.tproxyMark, table: c.tproxyTable } }
      : {}),
    mark: config.dial.mark,
    lanInterfaces: c.lanInterfaces,
    routerSelf: c.routerSelf,
    ipv6: c.ipv6,
    ports: c.ports,
    bypass4: byFamily(c.bypass, 4),
    bypass6: byFamily(c.bypass, 6),
    includeSrc4: byFamily(c.includeSrc, 4),
    includeSrc6: byFamily(c.includeSrc, 6),
    excludeSrc4: byFamily(c.excludeSrc, 4),
    excludeSrc6: byFamily(c.excludeSrc, 6),
    includeMac: c.includeMac,
    excludeMac: c.excludeMac,
  }
}

/** Names that point elsewhere in the config must exist; capture must build a valid ruleset. */
function checkReferences(config: Config): void {
  const upstreamExists = (wanted: string, path: string): void => {
    if (config.upstreams.some((u) => u.name === wanted)) return
    const known = config.upstreams.map((u) => u.name).join(', ') || 'none configured'
    throw new ConfigError(path, `upstream ${show(wanted)} is not in upstreams (known: ${known})`)
  }
  config.rules.forEach((r, i) => {
    if (r.action.type === 'upstream') upstreamExists(r.action.name, `rules[${i}].action`)
  })
  config.listeners.forEach((l, i) => {
    if (l.type === 'forward' && l.upstream !== '') upstreamExists(l.upstream, `listeners[${i}].upstream`)
  })
  config.listeners.forEach((l, i) => {
    if (l.type !== 'sni' || l.pair === '') return
    const park = config.listeners.find((o) => o.name === l.pair)
    if (park?.type !== 'park') {
      const known =
        config.listeners
          .filter((o) => o.type === 'park')
          .map((o) => o.name)
          .join(', ') || 'none configured'
      throw new ConfigError(`listeners[${i}].pair`, `${show(l.pair)} is not a park listener (known: ${known})`)
    }
  })
  config.sniRelay.forEach((r, i) => {
    if (config.listeners.some((l) => l.name === r.name))
      throw new ConfigError(
        `sniRelay[${i}].name`,
        `${show(r.name)} is already the name of a listener (the rules could not tell them apart)`,
      )
  })
  config.reverse.forEach((r, i) => {
    const clash = config.listeners.some((l) => l.name === r.name) || config.sniRelay.some((o) => o.name === r.name)
    if (clash)
      throw new ConfigError(
        `reverse[${i}].name`,
        `${show(r.name)} is already the name of a listener or sniRelay entry (the rules could not tell them apart)`,
      )
  })
  if (config.mesh === null && config.reverse.length > 0)
    throw new ConfigError('reverse[0]', 'a reverse tunnel requires the "mesh" section (the identity it proves)')
  // Relay over SNI is mutual TLS with the mesh identity: without one it could never work.
  if (config.mesh === null) {
    const park = config.listeners.findIndex((l) => l.type === 'park')
    if (park >= 0)
      throw new ConfigError(
        `listeners[${park}]`,
        'a park listener requires the "mesh" section (the identity it proves)',
      )
    if (config.sniRelay.length > 0)
      throw new ConfigError('sniRelay[0]', 'relay over SNI requires the "mesh" section (the identity it proves)')
  }
  const c = config.capture
  if (!c.enabled) return
  const l = captureTcpTproxy(config)
    ? checkTproxy(config, 'listener', 'tcp')
    : captureTarget(config, 'listener', 'redirect', 'traffic goes')
  const dnsPort = c.dns ? captureTarget(config, 'dnsListener', 'dns', 'queries go').listen.port || 1 : 0
  const tproxyPort = c.udp ? checkTproxy(config, 'udpListener', 'udp').listen.port || 1 : 0
  for (const key of ['bypass', 'includeSrc', 'excludeSrc'] as const) {
    c[key].forEach((x, i) => {
      if (parseCidr(x) === null)
        throw new ConfigError(`capture.${key}[${i}]`, `${show(x)} is not an IPv4/IPv6 address or CIDR`)
    })
  }
  try {
    nftRuleset(captureOptions(config, l.listen.port || 1, dnsPort, tproxyPort))
  } catch (e) {
    if (e instanceof ConfigError) {
      const renamed: Record<string, string> = {
        mark: 'dial.mark',
        'udp.mark': 'capture.tproxyMark',
        'udp.table': 'capture.tproxyTable',
        'udp.port': `listeners.${c.udpListener}`,
        tcpTproxy: 'capture.tproxyMark',
        'tcpTproxy.mark': 'capture.tproxyMark',
        'tcpTproxy.table': 'capture.tproxyTable',
        'tcpTproxy.port': `listeners.${c.listener}`,
      }
      const field = renamed[e.path] ?? `capture.${e.path.replace(/^(bypass|includeSrc|excludeSrc)[46]/, '$1')}`
      throw new ConfigError(field, e.detail, e.value)
    }
    throw e
  }
}

/**
 * The listener capture.listener (or capture.dnsListener, capture.udpListener) names, checked: it
 * exists, has the type, and, since REDIRECT rewrites to the incoming
 * interface's address, listens on a wildcard address (both families with
 * IPv6 capture).
 */
function captureTarget(
  config: Config,
  key: 'listener' | 'dnsListener' | 'udpListener',
  type: 'redirect' | 'dns' | 'tproxy',
  goes: string,
): ListenerConfig {
  const name = config.capture[key]
  if (name === '')
    throw new ConfigError(`capture.${key}`, `missing: name the ${type} listener that captured ${goes} to`)
  const l = config.listeners.find((x) => x.name === name)
  if (!l) throw new ConfigError(`capture.${key}`, `${show(name)} is not the name of a listener`)
  if (l.type !== type)
    throw new ConfigError(`capture.${key}`, `${show(name)} is a ${l.type} listener, not a ${type} listener`)
  const wildcard6 = l.listen.kind === 'ipv6' && isWildcard(l.listen.host)
  const wildcard4 = l.listen.kind === 'ipv4' && isWildcard(l.listen.host)
  if (!wildcard4 && !wildcard6) {
    throw new ConfigError(
      `capture.${key}`,
      `${show(name)} listens on ${formatEndpoint(l.listen)}: a ${type} listener for capture must listen on [::]:PORT (both families) or 0.0.0.0:PORT`,
    )
  }
  if (config.capture.ipv6 && !wildcard6) {
    throw new ConfigError(
      'capture.ipv6',
      `is true but ${show(name)} listens on ${formatEndpoint(l.listen)} (IPv4 only): listen on [::]:${l.listen.port} to capture both families, or set capture.ipv6 to false`,
    )
  }
  return l
}

/**
 * capture.udpListener (UDP) or capture.listener (TPROXY TCP) names a wildcard
 * tproxy listener that takes the network; the tproxy mark differs from ugate's own.
 */
function checkTproxy(config: Config, key: 'listener' | 'udpListener', network: Network): TproxyListenerConfig {
  const c = config.capture
  const u = captureTarget(config, key, 'tproxy', `${network.toUpperCase()} goes`) as TproxyListenerConfig
  if (!u.networks.includes(network))
    throw new ConfigError(
      `capture.${key}`,
      `${show(u.name)} takes ${u.networks.join(', ')}, not ${network}: add "${network}" to its networks`,
    )
  if (c.tproxyMark === config.dial.mark)
    throw new ConfigError(
      'capture.tproxyMark',
      `${c.tproxyMark} is also dial.mark: TPROXYed packets and ugate's own must carry different marks`,
    )
  return u
}

// ---- listeners ---------------------------------------------------------------

type Obj = Record<string, unknown>

interface ListenerSpec<T extends ListenerType> {
  /** Keys this type accepts besides name, type, listen and backlog. */
  keys: readonly string[]
  parse(obj: Obj, path: string, common: ListenerCommon): Extract<ListenerConfig, { type: T }>
}

const proxySpec = <T extends 'socks' | 'http' | 'mixed'>(type: T): ListenerSpec<T> => ({
  // Only SOCKS has UDP (ASSOCIATE): an http listener refuses udpIdleTimeout as an unknown key.
  keys: type === 'http' ? ['users'] : ['users', 'udpIdleTimeout'],
  parse: (obj, path, common) =>
    ({
      ...common,
      type,
      users: users(given(obj.users, []), `${path}.users`),
      udpIdleTimeoutMs: ms(
        given(obj.udpIdleTimeout, DEFAULTS.udpIdleTimeout),
        `${path}.udpIdleTimeout`,
        SECONDS.udpIdleTimeout,
      ),
    }) as Extract<ListenerConfig, { type: T }>,
})

const LISTENER_SPECS: { [T in ListenerType]: ListenerSpec<T> } = {
  forward: {
    keys: ['target', 'upstream'],
    parse: (obj, path, common) => ({
      ...common,
      type: 'forward',
      target: endpoint(required(obj, 'target', path), `${path}.target`, 'target'),
      upstream: obj.upstream === undefined ? '' : name(obj.upstream, `${path}.upstream`),
    }),
  },
  socks: proxySpec('socks'),
  http: proxySpec('http'),
  mixed: proxySpec('mixed'),
  redirect: { keys: [], parse: (_obj, _path, common) => ({ ...common, type: 'redirect' }) },
  tproxy: {
    keys: ['networks', 'udpIdleTimeout', 'udpDnsIdleTimeout', 'maxFlows'],
    parse: (obj, path, common) => ({
      ...common,
      type: 'tproxy',
      networks: networks(given(obj.networks, ['udp']), `${path}.networks`),
      udpIdleTimeoutMs: ms(
        given(obj.udpIdleTimeout, DEFAULTS.udpIdleTimeout),
        `${path}.udpIdleTimeout`,
        SECONDS.udpIdleTimeout,
      ),
      udpDnsIdleTimeoutMs: ms(
        given(obj.udpDnsIdleTimeout, DEFAULTS.udpDnsIdleTimeout),
        `${path}.udpDnsIdleTimeout`,
        SECONDS.udpIdleTimeout,
      ),
      maxFlows: integer(given(obj.maxFlows, DEFAULTS.maxFlows), `${path}.maxFlows`, 1, 1000000),
    }),
  },
  sni: {
    keys: ['tlsPort', 'httpPort', 'pair', 'pairTimeout', 'maxWaiting'],
    parse: (obj, path, common) => ({
      ...common,
      type: 'sni',
      tlsPort: integer(given(obj.tlsPort, 443), `${path}.tlsPort`, 1, 65535),
      httpPort: integer(given(obj.httpPort, 80), `${path}.httpPort`, 1, 65535),
      pair: given(obj.pair, '') === '' ? '' : name(obj.pair, `${path}.pair`),
      pairTimeoutMs: ms(given(obj.pairTimeout, 2), `${path}.pairTimeout`, SECONDS.pairTimeout),
      maxWaiting: integer(given(obj.maxWaiting, 64), `${path}.maxWaiting`, 1, 100000),
    }),
  },
  park: {
    keys: ['grants', 'maxParked'],
    parse: (obj, path, common) => ({
      ...common,
      type: 'park',
      grants: grants(given(obj.grants, {}), `${path}.grants`),
      maxParked: integer(given(obj.maxParked, 64), `${path}.maxParked`, 1, 100000),
    }),
  },
  hbone: {
    keys: ['peers', 'reverse', ...PING_KEYS],
    parse: (obj, path, common) => ({
      ...common,
      type: 'hbone',
      // The keep-alive of the reverse tunnels it accepts (clients PING their own connections).
      ...pingTiming(obj, path),
      peers: array(given(obj.peers, []), `${path}.peers`).map((v, i) => spiffeId(v, `${path}.peers[${i}]`)),
      // Exact ids only: never an open relay.
      reverse: array(given(obj.reverse, []), `${path}.reverse`).map((v, i) => spiffeId(v, `${path}.reverse[${i}]`)),
    }),
  },
  dns: {
    keys: ['servers', 'hosts', 'rejectAddresses', 'timeout', 'cacheSize', 'caBundle'],
    parse: (obj, path, common) => ({
      ...common,
      type: 'dns',
      servers: dnsServers(required(obj, 'servers', path), `${path}.servers`),
      hosts: staticHosts(given(obj.hosts, {}), `${path}.hosts`),
      rejectAddresses: ipList(given(obj.rejectAddresses, []), `${path}.rejectAddresses`),
      timeoutMs: ms(given(obj.timeout, DEFAULTS.dnsTimeout), `${path}.timeout`, SECONDS.dnsTimeout),
      cacheSize: integer(given(obj.cacheSize, DEFAULTS.dnsCacheSize), `${path}.cacheSize`, 0, 1000000),
      caBundle: filePath(given(obj.caBundle, DEFAULTS.caBundle), `${path}.caBundle`),
    }),
  },
}

const LISTENER_TYPES = Object.keys(LISTENER_SPECS) as ListenerType[]
const COMMON_KEYS = ['name', 'type', 'listen', 'backlog', 'allow']

function listeners(value: unknown): ListenerConfig[] {
  if (value === undefined) throw new ConfigError('listeners', 'missing (at least one listener is required)')
  if (!Array.isArray(value)) throw new ConfigError('listeners', `expected an array, got ${show(value)}`)
  if (value.length === 0) throw new ConfigError('listeners', 'at least one listener is required')
  const out = value.map((v, i) => listener(v, `listeners[${i}]`))
  checkUnique(out)
  return out
}

function listener(value: unknown, path: string): ListenerConfig {
  const obj = object(value, path)
  const type = obj.type
  if (type === undefined) throw new ConfigError(`${path}.type`, `missing (known: ${LISTENER_TYPES.join(', ')})`)
  if (!isListenerType(type)) {
    throw new ConfigError(`${path}.type`, `${show(type)} is not a listener type (known: ${LISTENER_TYPES.join(', ')})`)
  }
  const spec = LISTENER_SPECS[type] as unknown as ListenerSpec<ListenerType>
  checkKeys(obj, path, [...COMMON_KEYS, ...spec.keys])
  const name = required(obj, 'name', path)
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new ConfigError(`${path}.name`, `${show(name)} is not a name of 1-64 letters, digits, "_" or "-"`)
  }
  // HBONE has a well-known port: an hbone listener may leave out `listen`.
  const listen = type === 'hbone' ? given(obj.listen, `[::]:${HBONE_PORT}`) : required(obj, 'listen', path)
  const common: ListenerCommon = {
    name,
    listen: endpoint(listen, `${path}.listen`, 'listen'),
    backlog: integer(given(obj.backlog, DEFAULTS.backlog), `${path}.backlog`, 1, 65535),
    allow: cidrs(given(obj.allow, DEFAULTS.allow), `${path}.allow`),
  }
  return spec.parse(obj, path, common)
}

function isListenerType(v: unknown): v is ListenerType {
  return typeof v === 'string' && (LISTENER_TYPES as string[]).includes(v)
}

/** Names must be unique; two listeners must not try to bind the same socket address. */
function checkUnique(list: ListenerConfig[]): void {
  list.forEach((l, i) => {
    const earlier = list.slice(0, i)
    const j = earlier.findIndex((other) => other.name === l.name)
    if (j >= 0) throw new ConfigError(`listeners[${i}].name`, `${show(l.name)} is already the name of listeners[${j}]`)
    const k = earlier.findIndex((other) => listenAddressesClash(other.listen, l.listen))
    if (k >= 0) {
      const other = earlier[k]!
      throw new ConfigError(
        `listeners[${i}].listen`,
        `${show(formatEndpoint(l.listen))} is already used by listeners[${k}] (${show(other.name)}, ${formatEndpoint(other.listen)})`,
      )
    }
  })
}

// ---- value readers: each returns the typed value or throws ConfigError at `path` -----

function networks(value: unknown, path: string): Network[] {
  const list = array(value, path)
  if (list.length === 0) throw new ConfigError(path, 'must not be empty (default: ["udp"])')
  const out = list.map((v, i) => {
    if (v !== 'udp' && v !== 'tcp') throw new ConfigError(`${path}[${i}]`, `${show(v)} is not a network (udp, tcp)`)
    return v
  })
  return [...new Set(out)]
}

/** An absolute path that fits sockaddr_un (107 bytes), or '' for none. */
function adminConfig(admin: Record<string, unknown>): Config['admin'] {
  const listenText = given(admin.listen, '')
  const listen = listenText === '' ? null : endpoint(listenText, 'admin.listen', 'listen')
  const secret = admin.secret === undefined || admin.secret === '' ? '' : credential(admin.secret, 'admin.secret')
  // Anyone who reaches the port could close connections and read who goes where.
  if (listen !== null && secret === '' && !isLoopback(listen.host)) {
    throw new ConfigError(
      'admin.listen',
      `${show(listenText)} is not a loopback address: set admin.secret, or listen on 127.0.0.1 or [::1]`,
    )
  }
  return { socket: socketPath(given(admin.socket, ''), 'admin.socket'), listen, secret }
}

function isLoopback(host: string): boolean {
  const cidr = parseCidr(host)
  if (cidr === null) return false
  return cidr.family === 4 ? cidr.words[0]! >>> 24 === 127 : ipKey(host) === '::1'
}

function mesh(value: unknown): MeshConfig {
  const obj = object(value, 'mesh')
  checkKeys(obj, 'mesh', ['identityDir', 'certChain', 'key', 'rootCert', 'trustDomain', 'nodeSuffix'])
  const dir = filePath(given(obj.identityDir, IDENTITY_DEFAULTS.dir), 'mesh.identityDir').replace(/(.)\/+$/, '$1')
  const inDir = (file: string): string => `${dir === '/' ? '' : dir}/${file}`
  const td = given(obj.trustDomain, '')
  if (typeof td !== 'string') throw new ConfigError('mesh.trustDomain', `${show(td)} is not a string`)
  const tdProblem = td === '' ? null : trustDomainProblem(td)
  if (tdProblem !== null) throw new ConfigError('mesh.trustDomain', `${show(td)} ${tdProblem}`)
  const suffix = given(obj.nodeSuffix, '')
  const suffixProblem = typeof suffix !== 'string' ? 'is not a string' : suffix === '' ? null : hostNameProblem(suffix)
  if (suffixProblem !== null)
    throw new ConfigError('mesh.nodeSuffix', `${show(suffix)} is not a host name suffix: ${suffixProblem}`)
  return {
    identityDir: dir,
    certChain: filePath(given(obj.certChain, inDir(IDENTITY_FILES.certChain)), 'mesh.certChain'),
    key: filePath(given(obj.key, inDir(IDENTITY_FILES.key)), 'mesh.key'),
    rootCert: filePath(given(obj.rootCert, inDir(IDENTITY_FILES.rootCert)), 'mesh.rootCert'),
    trustDomain: td,
    nodeSuffix: (suffix as string).toLowerCase(),
  }
}

function filePath(v: unknown, path: string): string {
  if (typeof v !== 'string' || !v.startsWith('/') || v.length > 4095 || /[\x00-\x1f]/.test(v)) {
    throw new ConfigError(path, `${show(v)} is not an absolute file path`)
  }
  return v
}

function socketPath(v: unknown, path: string): string {
  if (v === '') return ''
  if (typeof v !== 'string' || !v.startsWith('/') || v.length > 107 || /[\x00-\x1f]/.test(v)) {
    throw new ConfigError(path, `${show(v)} is not an absolute socket path of at most 107 bytes`)
  }
  return v
}

function array(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) throw new ConfigError(path, `expected an array, got ${show(value)}`)
  return value
}

function name(v: unknown, path: string): string {
  if (typeof v !== 'string' || !NAME_PATTERN.test(v)) {
    throw new ConfigError(path, `${show(v)} is not a name of 1-64 letters, digits, "_" or "-"`)
  }
  return v
}

function cidrs(value: unknown, path: string): string[] {
  return array(value, path).map((v, i) => {
    if (typeof v !== 'string' || parseCidr(v) === null) {
      throw new ConfigError(`${path}[${i}]`, `${show(v)} is not an IPv4/IPv6 address or CIDR`)
    }
    return v
  })
}

const TLS_SCHEME = 'tls://'

/**
 * Upstream resolvers: "IP", "IP:PORT" or "[IPv6]:PORT" (port 53 when not
 * given); DNS over TLS: "tls://IP", "tls://NAME@IP" with the same address
 * forms (port 853 when not given), NAME being what the certificate must carry.
 */
function dnsServers(value: unknown, path: string): DnsServer[] {
  const list = array(value, path)
  if (list.length === 0) throw new ConfigError(path, 'at least one upstream resolver is required')
  return list.map((v, i) => dnsServer(v, `${path}[${i}]`))
}

function dnsServer(v: unknown, path: string): DnsServer {
  if (typeof v !== 'string')
    throw new ConfigError(path, `${show(v)} is not a string "IP[:PORT]" or "tls://[NAME@]IP[:PORT]"`)
  const tls = v.startsWith(TLS_SCHEME)
  let address = tls ? v.slice(TLS_SCHEME.length) : v
  let tlsName = ''
  const at = address.indexOf('@')
  if (tls && at >= 0) {
    tlsName = address.slice(0, at).replace(/\.$/, '').toLowerCase()
    address = address.slice(at + 1)
    const problem = isIpLiteral(tlsName) ? null : hostNameProblem(tlsName)
    if (problem !== null) throw new ConfigError(path, `${show(v)}: ${show(tlsName)} is not a host name (${problem})`)
  }
  const port = tls ? 853 : 53
  const why = 'a resolver is named by its address'
  const notIp = () =>
    tls
      ? new ConfigError(
          path,
          `${show(v)}: ${show(address)} is not an IP address (${why}; a name to verify goes before "@")`,
        )
      : new ConfigError(path, `${show(v)} is not an IP address (${why}; DNS over TLS: "tls://[NAME@]IP[:PORT]")`)
  let ep: Endpoint
  try {
    ep = parseEndpoint(withDefaultPort(address, port), 'target')
  } catch (e) {
    if (!(e instanceof AddressError)) throw e
    if (!address.includes(':')) throw notIp()
    throw new ConfigError(path, `${show(v)}: ${e.message}`)
  }
  if (ep.kind === 'name') throw notIp()
  return { transport: tls ? 'tls' : 'udp', endpoint: ep, tlsName }
}

/** A resolver as the config writes it: "9.9.9.9:53", "tls://dns.quad9.net@9.9.9.9:853". */
export function formatDnsServer(s: DnsServer): string {
  if (s.transport === 'udp') return formatEndpoint(s.endpoint)
  return `${TLS_SCHEME}${s.tlsName === '' ? '' : `${s.tlsName}@`}${formatEndpoint(s.endpoint)}`
}

function ipList(value: unknown, path: string): string[] {
  return array(value, path).map((v, i) => {
    if (typeof v !== 'string' || !isIpLiteral(v))
      throw new ConfigError(`${path}[${i}]`, `${show(v)} is not an IP address`)
    return v
  })
}

/** name → addresses; names as the rules take them. */
function staticHosts(value: unknown, path: string): Record<string, string[]> {
  const obj = object(value, path)
  const out: Record<string, string[]> = {}
  for (const [name, addrs] of Object.entries(obj)) {
    const problem = hostNameProblem(name.replace(/\.$/, ''))
    if (problem !== null) throw new ConfigError(`${path}.${name}`, `${show(name)} is not a host name: ${problem}`)
    const list = ipList(addrs, `${path}.${name}`)
    if (list.length === 0) throw new ConfigError(`${path}.${name}`, 'no addresses')
    out[name] = list
  }
  return out
}

/** SPIFFE id → the names (exact or "*.suffix") that gate may register. */
function grants(value: unknown, path: string): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const [id, names] of Object.entries(object(value, path))) {
    spiffeId(id, `${path}.${id}`)
    out[id] = array(names, `${path}.${id}`).map((n, i) => {
      const bare = typeof n === 'string' ? n.replace(/^\*\./, '') : n
      const problem = typeof bare === 'string' ? hostNameProblem(bare) : 'not a string'
      if (problem !== null)
        throw new ConfigError(`${path}.${id}[${i}]`, `${show(n)} is not a host name or *.suffix: ${problem}`)
      return (n as string).toLowerCase()
    })
  }
  return out
}

/** 1-255 bytes: what SOCKS5 (RFC 1929) can carry. */
function credential(v: unknown, path: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 255 || /[\x00-\x1f]/.test(v)) {
    throw new ConfigError(
      path,
      `${v === undefined ? 'missing' : show(typeof v === 'string' ? '***' : v)}: expected 1-255 printable characters`,
    )
  }
  return v
}

function users(value: unknown, path: string): User[] {
  const list = array(value, path).map((v, i) => {
    const p = `${path}[${i}]`
    const obj = object(v, p)
    checkKeys(obj, p, ['username', 'password'])
    const username = credential(obj.username, `${p}.username`)
    if (username.includes(':'))
      throw new ConfigError(`${p}.username`, `${show(username)} contains ":" (HTTP Basic cannot carry it)`)
    return { username, password: credential(obj.password, `${p}.password`) }
  })
  list.forEach((u, i) => {
    if (list.findIndex((o) => o.username === u.username) < i) {
      throw new ConfigError(`${path}[${i}].username`, `${show(u.username)} is listed twice`)
    }
  })
  return list
}

function object(value: unknown, path: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(path === '' ? 'config' : path, `expected an object, got ${show(value)}`)
  }
  return value as Obj
}

function checkKeys(obj: Obj, path: string, allowed: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw new ConfigError(join(path, key), `unknown key (expected one of: ${allowed.join(', ')})`)
    }
  }
}

function required(obj: Obj, key: string, path: string): unknown {
  if (obj[key] === undefined) throw new ConfigError(join(path, key), 'missing')
  return obj[key]
}

/** The default only for a missing key: an explicit null is an error like any bad value. */
function given<T>(v: unknown, fallback: T): unknown {
  return v === undefined ? fallback : v
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`
}

function logLevel(v: unknown, path: string): LogLevel {
  if (!isLogLevel(v)) throw new ConfigError(path, `${show(v)} is not one of ${LOG_LEVELS.join(', ')}`)
  return v
}

function boolean(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') throw new ConfigError(path, `${show(v)} is not true or false`)
  return v
}

function integer(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(path, `${show(v)} is not an integer ${min}-${max}`)
  }
  return v
}

function ms(v: unknown, path: string, range: SecondsRange): number {
  if (!inSecondsRange(v, range)) throw new ConfigError(path, `${show(v)} is not ${describeSeconds(range)}`)
  return Math.round(v * 1000)
}

function endpoint(v: unknown, path: string, role: 'listen' | 'target'): Endpoint {
  const form = role === 'listen' ? 'IP:PORT' : 'HOST:PORT'
  if (typeof v !== 'string') throw new ConfigError(path, `${show(v)} is not a string "${form}"`)
  try {
    return parseEndpoint(v, role)
  } catch (e) {
    if (e instanceof AddressError) throw new ConfigError(path, e.message)
    throw e
  }
}
