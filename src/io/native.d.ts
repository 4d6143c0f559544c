// Types of the C module `ugate:native` (native/mod_*.c). Only src/io/ imports it.
// Sockets are plain file descriptors (numbers). Failing calls throw a NativeError.
//
// The loop (native/loop.c): after every callback (watch, timer, signal,
// DNS answer, relay result) it runs all pending QuickJS jobs, so promise
// continuations never wait for the next I/O event. An exception escaping a
// callback, or a promise rejection still unhandled once the jobs are drained,
// is a bug: it is printed with its stack and the process exits with status 70.
// The process ends with status 0 when nothing keeps the loop alive (watches,
// timers, DNS lookups and relays do; signal handlers do not), or with the
// status given to exit().

declare module 'ugate:native' {
  /** Error thrown by native calls: `code` is the errno name, e.g. 'ECONNREFUSED'. */
  export interface NativeError extends Error {
    code: string
    errno: number
    syscall: string
  }

  // ---- process -----------------------------------------------------------
  /** Command-line arguments after the program name. */
  export const argv: string[]
  /** quickjs-ng version the binary was built with. */
  export const engineVersion: string
  /** Monotonic clock in milliseconds (with fractions). */
  export function now(): number
  /** Wall clock in milliseconds since the epoch. */
  export function wallClock(): number
  /** Write a string to stderr (fd 2), unbuffered. */
  export function writeStderr(s: string): void
  /** Write a string to stdout (fd 1), unbuffered. */
  export function writeStdout(s: string): void
  /** Read a whole file as UTF-8 text (bytes: as bytes); throws NativeError (code ENOENT, ...). */
  export function readFile(path: string): string
  export function readFile(path: string, bytes: true): ArrayBuffer
  /**
   * Write a whole file as UTF-8 with this mode (also set on an existing
   * file). exclusive: never replace a file (throws EEXIST), else truncate.
   */
  export function writeFile(path: string, text: string, mode: number, exclusive: boolean): void
  /**
   * Stop the loop with this status: the current JS stack unwinds at once
   * (an uncatchable error), live relays are closed, the process exits.
   */
  export function exit(code: number): never
  /** Open file descriptors of this process (counts /proc/self/fd). */
  export function fdCount(): number
  /** This process's id. */
  export function pid(): number
  /** Peak resident set size in KiB (VmHWM). */
  export function peakRssKiB(): number

  export interface RunResult {
    /** Exit status; 128 + signal number when the program was killed. */
    code: number
    stdout: string
    stderr: string
  }
  /**
   * Run a program (looked up in PATH) with `input` on its stdin and wait for
   * it. Blocks the event loop (the relay thread keeps running): only for
   * short helpers such as `nft -f -`. Throws NativeError when it cannot start.
   */
  export function runSync(argv: string[], input?: string): RunResult
  /**
   * A command (with `input` on stdin) run when the process ends however it
   * ends — a clean exit, exit(), or a fatal error — unless cleared with null.
   * For cleanup that must not be skipped: the nft table.
   */
  export function setExitCommand(argv: string[] | null, input?: string): void

  // ---- event loop (epoll in native/loop.c) -------------------------------
  /** One-shot timer; returns an id for clearTimeout. Keeps the loop alive. */
  export function setTimeout(cb: () => void, ms: number): number
  /** A timer that already fired or was cleared is ignored. */
  export function clearTimeout(id: number): void
  export const EV_READ: number
  export const EV_WRITE: number
  /**
   * Level-triggered watch of fd: cb(revents) on every loop turn while ready.
   * revents may include EV_ERR/EV_HUP. A new watch on the same fd replaces
   * the old one. Keeps the loop alive until unwatch(fd) or close(fd).
   */
  export function watch(fd: number, events: number, cb: (revents: number) => void): void
  /** No-op for an fd that is not watched. */
  export function unwatch(fd: number): void
  export const EV_ERR: number
  export const EV_HUP: number
  /**
   * Handle a signal through signalfd (the default action is blocked); cb null
   * restores it. Handlers do not keep the loop alive.
   */
  export function onSignal(signo: number, cb: (() => void) | null): void
  export const SIGINT: number
  export const SIGTERM: number
  export const SIGHUP: number

  // ---- TCP sockets (native/mod_net.c); all non-blocking, CLOEXEC --------
  export interface SockAddr {
    /** Numeric IP, IPv6 without brackets, IPv4-mapped IPv6 shown as IPv4. */
    addr: string
    port: number
    family: 4 | 6
  }
  /**
   * Bind + listen on a numeric IP. SO_REUSEADDR set. "::" is dual-stack (IPv4
   * arrives v4-mapped); other IPv6 addresses are V6ONLY. transparent: IP_TRANSPARENT, for TPROXYed
   * connections (an accepted socket's local address is the client's original
   * destination); needs CAP_NET_ADMIN.
   */
  export function listen(addr: string, port: number, backlog: number, transparent?: boolean): number
  /** Accept one connection; null when none is pending (EAGAIN). */
  export function accept(fd: number): (SockAddr & { fd: number }) | null
  /**
   * Accept up to `max` connections in one call, until none is pending. Errors of
   * one aborted connection are skipped; another error throws when nothing was
   * accepted (else it comes again on the next call).
   */
  export function acceptBatch(fd: number, max: number): Array<SockAddr & { fd: number }>
  export interface ConnectOptions {
    /** SO_MARK for the outbound socket (needs CAP_NET_ADMIN). */
    mark?: number
    /** Numeric source address to bind before connecting. */
    bind?: string
  }
  /**
   * Start a non-blocking connect to a numeric IP. Returns the fd at once;
   * wait for EV_WRITE, then socketError(fd) tells the outcome (0 = connected).
   */
  export function connect(addr: string, port: number, opts?: ConnectOptions): number
  /** TCP keepalive: probes after idleSeconds (3-86400) idle, every third of it, dead after 3 unanswered. */
  export function keepalive(fd: number, idleSeconds: number): void
  /** getsockopt(SO_ERROR): 0 or an errno; see errnoName. */
  export function socketError(fd: number): number
  /** errno number → name ('ECONNREFUSED'); unknown numbers give 'E<n>'. */
  export function errnoName(errno: number): string
  /** errno number → strerror text. */
  export function strerror(errno: number): string
  /** recv up to max bytes. null = would block; byteLength 0 = EOF. */
  export function read(fd: number, max: number): ArrayBuffer | null
  /** recv with MSG_PEEK. */
  export function peek(fd: number, max: number): ArrayBuffer | null
  /** send (MSG_NOSIGNAL) part of data; returns bytes written, 0 when it would block. */
  export function write(fd: number, data: ArrayBuffer | Uint8Array): number
  export const SHUT_RD: number
  export const SHUT_WR: number
  export const SHUT_RDWR: number
  export function shutdown(fd: number, how: number): void
  /** Close fd and drop its watch, if any. Closing a closed fd throws EBADF. */
  export function close(fd: number): void
  /** close with SO_LINGER 0: the peer gets a RST. */
  export function reset(fd: number): void
  export function localAddress(fd: number): SockAddr
  export function peerAddress(fd: number): SockAddr
  /** Original destination of a REDIRECTed socket (IPv4 or IPv6); null when there is none. */
  export function originalDst(fd: number): SockAddr | null

  // ---- UDP sockets JS answers itself (the DNS listener; native/mod_net.c) ----
  /**
   * A non-blocking UDP socket bound to a numeric IP and port (0 = any free
   * one). "::" is dual-stack. Each datagram's destination address is
   * recorded (IP_PKTINFO / IPV6_RECVPKTINFO) for recvFrom's `local`.
   */
  export function udpBind(addr: string, port: number, opts?: { mark?: number }): number
  export interface Datagram extends SockAddr {
    /** The first `max` bytes of the datagram. */
    data: ArrayBuffer
    /** The datagram's real size: larger than data.byteLength when it was cut. */
    size: number
    /** The address it was sent to (a wildcard socket's actual local address), when known. */
    local: string | null
  }
  /** One datagram (at most `max` bytes of it, 1-65535), or null when none is waiting. */
  export function recvFrom(fd: number, max: number): Datagram | null
  /**
   * Send one datagram to addr:port, from the local address `from` when
   * given (a reply leaves from where the request arrived). Returns the bytes
   * sent, 0 when the socket buffer is full. IPv4 targets work on a "::" socket.
   */
  export function sendTo(fd: number, data: ArrayBuffer | Uint8Array, addr: string, port: number, from?: string): number

  /**
   * Listen on a unix stream socket (mode 0600). A stale socket file at `path`
   * is removed first; any other file there makes it fail (EADDRINUSE).
   */
  export function listenUnix(path: string, backlog: number): number
  /** Start a non-blocking connect to a unix socket; wait for EV_WRITE, then socketError. */
  export function connectUnix(path: string): number
  /**
   * A non-blocking unix datagram socket connected to `path` (native/mod_net.c);
   * send with write(). Throws ENOENT/ECONNREFUSED when nobody reads there.
   */
  export function connectUnixDgram(path: string): number
  /**
   * A netlink socket that becomes readable whenever the nftables ruleset
   * changes (NFNLGRP_NFTABLES; native/mod_nlmon.c). Drain it with read();
   * the messages are not parsed. Needs CAP_NET_ADMIN.
   */
  export function nftMonitor(): number
  /** Remove a file; a missing one is fine. */
  export function unlink(path: string): void

  // ---- QUIC (native/mod_quic.c, native/quic.c): client Initial packets ------
  /** One client Initial packet, opened (its keys derive from the DCID). */
  export interface QuicInitialPacket {
    /** 0x00000001 (v1) or 0x6b3343cf (v2). */
    version: number
    dcid: Uint8Array
    pn: number
    /** The decrypted payload: frames. */
    frames: Uint8Array
  }
  /**
   * Decrypt the client Initial packets of one UDP datagram (RFC 9001 5, RFC
   * 9369; coalesced 0-RTT/Handshake packets after them are skipped). When
   * the first packet cannot be opened: error = not-quic | not-initial |
   * version | malformed | truncated | bad-tag, message says which and where.
   */
  export function quicOpenInitials(
    datagram: ArrayBuffer | Uint8Array,
  ):
    | { packets: QuicInitialPacket[] }
    | { error: 'not-quic' | 'not-initial' | 'version' | 'malformed' | 'truncated' | 'bad-tag'; message: string }

  // ---- identities (native/mod_identity.c, native/identity.c): mbedTLS X.509 --
  /**
   * A new self-signed P-256 CA and a node key and certificate it signs (with
   * the URI SAN `uri`), as PEM. Subjects are DN strings ("O=x,CN=y"), times
   * "YYYYMMDDhhmmss" UTC. Throws an Error saying which step failed.
   */
  export function identityCreate(p: {
    caSubject: string
    caNotBefore: string
    caNotAfter: string
    nodeSubject: string
    nodeNotBefore: string
    nodeNotAfter: string
    uri: string
  }): { rootCert: string; caKey: string; certChain: string; key: string }
  /** One certificate as identityInspect reads it. */
  export interface CertInfo {
    subject: string
    issuer: string
    /** ISO 8601 UTC, e.g. "2026-12-06T01:02:03Z". */
    notBefore: string
    notAfter: string
    /** Its URI SANs. */
    uris: string[]
    /** The uncompressed P-256 point (65 bytes), null for another key type. */
    publicKey: Uint8Array | null
    /**
     * The original ugate's node id (native/identity.c, the one place it is
     * computed): base32 of SHA-256 of publicKey, 52 characters; null without one.
     */
    nodeId: string | null
  }
  /**
   * Parse a PEM chain (leaf first), PEM trust anchors and optionally a PEM
   * private key; verify the chain against the anchors, ignoring dates (the
   * caller checks them): verify is "" when it holds, else the reasons
   * ("not-trusted", ...). keyMatches (key given): it is the leaf's key.
   * error names the input that does not parse.
   */
  export function identityInspect(
    chainPem: string,
    rootPem: string,
    keyPem?: string,
  ): { certs: CertInfo[]; verify: string; keyMatches?: boolean } | { error: 'chain' | 'root' | 'key'; message: string }
  /** n (1-256) bytes from mbedTLS's CTR-DRBG seeded by getrandom(2). */
  export function randomBytes(n: number): Uint8Array
  /** SHA-1 of data (20 bytes; mbedTLS): only for the WebSocket handshake. */
  export function sha1(data: ArrayBuffer | Uint8Array): Uint8Array
  /** The DER signature (ECDSA for a P-256 key) of SHA-256(data) with a PEM private key; throws when it does not parse. */
  export function identitySign(keyPem: string, data: ArrayBuffer | Uint8Array): Uint8Array
  /**
   * Whether sig is the signature of SHA-256(data) by the key of the first
   * certificate of a PEM chain; throws when the chain does not parse. Trust
   * is identityInspect's question.
   */
  export function identityVerifySignature(
    chainPem: string,
    data: ArrayBuffer | Uint8Array,
    sig: ArrayBuffer | Uint8Array,
  ): boolean

  // ---- mesh TLS (native/mod_tls.c, native/tls.c) ----------------------------
  /**
   * A loaded mutual TLS 1.3 identity (tls_config in native/tls.h), opaque:
   * the HBONE binding takes it (ug_tls_config_from_js). Its connections keep
   * it alive in C; the object itself drops its reference when collected.
   */
  export interface TlsConfig {
    readonly __tlsConfig: unique symbol
  }
  /**
   * Load the PEM files (chain: leaf first with a P-256 key and a SPIFFE URI
   * SAN; roots: the only trust anchors). Throws an Error whose message names
   * the file (and the date, for an expired or not yet valid certificate).
   * trustDomain: peers' SPIFFE ids must be in it ('' or absent: any the roots vouch for).
   */
  export function tlsConfig(o: {
    server: boolean
    chain: string
    key: string
    roots: string
    trustDomain?: string
  }): TlsConfig
  /** Our SPIFFE id and node id (52 base32 characters) in that config. */
  export function tlsConfigInfo(c: TlsConfig): { server: boolean; spiffeId: string; nodeId: string }
  /** A web PKI client config (tls.c's web mode): TLS 1.3, no client certificate, no ALPN. */
  export interface TlsWebConfig {
    readonly __tlsWebConfig: unique symbol
  }
  /**
   * Load a CA bundle (PEM; certificates this mbedTLS cannot parse are
   * skipped, one at least must load). Throws an Error naming the file.
   */
  export function tlsWebConfig(caFile: string): TlsWebConfig
  /** How many certificates of the bundle were taken. */
  export function tlsConfigInfo(c: TlsWebConfig): { web: true; roots: number }

  // ---- DNS over TLS (native/mod_dot.c, on the loop thread) -----------------
  /** What one wake of a DoT connection found (each field only when it happened). */
  export interface DotEvent {
    /** The handshake is done (once). */
    ready?: true
    /** Whole DNS messages the server sent, in order. */
    answers?: ArrayBuffer[]
    /** The connection is over (the last event): why, '' when the server closed it. */
    closed?: string
  }
  /**
   * Start TLS on a connected TCP socket (taken over unless this throws):
   * host is the name the certificate must carry (a DNS name, sent as SNI) or
   * an IP literal (an IP address SAN). Returns the connection's id.
   */
  export function dotOpen(fd: number, tls: TlsWebConfig, host: string, cb: (ev: DotEvent) => void): number
  /** Queue one DNS message (framed in C, sent after the handshake); throws when closed or 256 KiB wait. */
  export function dotSend(id: number, message: Uint8Array): void
  /** Close (close_notify, then the socket); no callback follows. Unknown ids are ignored. */
  export function dotClose(id: number): void

  // ---- DNS (native/mod_dns.c): getaddrinfo on worker threads -------------
  /**
   * Resolve a host name (or numeric address) to all its addresses,
   * IPv6 and IPv4 as getaddrinfo orders them. cb(null, addrs) or
   * cb(errorText, []) e.g. 'Name or service not known'. A pending lookup keeps
   * the loop alive; it cannot be cancelled (getaddrinfo has its own timeouts).
   */
  export function resolve(host: string, cb: (err: string | null, addrs: string[]) => void): void

  // ---- relay (native/relay.c): C moves the bytes from here on -------------
  export interface RelayOptions {
    /** Bytes already read from a (client) to send to b first. */
    up?: ArrayBuffer | Uint8Array
    /** Bytes already read from b (server) to send to a first. */
    down?: ArrayBuffer | Uint8Array
    /** splice(2) through pipes (true) or a read/write copy loop (false). */
    splice: boolean
    /** Close both sides after this long without traffic (ms); 0 = never. */
    idleMs: number
    /**
     * Read at most this many bytes from a (after `up`); then a is no longer
     * read and b gets no FIN: what follows one HTTP request is never
     * forwarded. Unlimited when absent.
     */
    upLimit?: number
  }
  export interface RelayResult {
    /** Bytes a→b, including opts.up. */
    bytesUp: number
    /** Bytes b→a, including opts.down. */
    bytesDown: number
    ms: number
    /** 'eof' (both sides finished), 'idle', 'client-error', 'server-error', 'shutdown'. */
    reason: 'eof' | 'idle' | 'client-error' | 'server-error' | 'shutdown' | 'closed'
    /** errno name for the *-error reasons, else ''. */
    error: string
    /** Whether any byte went through splice(2). */
    spliced: boolean
  }
  /**
   * Hand both sockets to the relay thread; from then on JS must not touch
   * a or b (the relay closes them). cb runs once, on a later loop turn.
   * Returns a relay id. When it throws (bad arguments, out of memory) it has
   * not taken the sockets. An error on one side resets both.
   */
  export function relay(a: number, b: number, opts: RelayOptions, cb: (r: RelayResult) => void): number
  /**
   * Close the relay with this id now; its callback runs on a later turn with
   * reason 'closed'. False when that relay is already over.
   */
  export function relayAbort(id: number): boolean
  /** Close every live relay now; their callbacks run on a later turn with reason 'shutdown'. */
  export function relayAbortAll(): void
  export interface RelayStats {
    /** Relays currently live (every starter: relay() and the native forward). */
    active: number
    /** Relays started since the process began (the same). */
    total: number
    /** splice(2) calls made, and read/write calls of the copy loop. */
    spliceCalls: number
    copyCalls: number
    /** Pipes held idle in the pool (closed when no relay is live). */
    pipesPooled: number
  }
  export function relayStats(): RelayStats
  /**
   * Bytes moved so far by every unfinished relay (relay() and native
   * forwards: ForwardConn.relay), flat: [id, up, down, id, up,
   * down, ...]. Published by the relay thread once a second, so up to a second
   * old (the result's counts are exact).
   */
  export function relayBytes(): number[]

  // ---- transparent UDP (native/udp.c, native/mod_udp.c) -----------------
  export interface UdpListenerOptions {
    /** A flow without traffic this long ends (reason 'idle'). */
    idleMs: number
    /** The same for flows whose first destination port is 53. */
    dnsIdleMs: number
    /** Over this many flows the least recently active one ends ('evicted'). */
    maxFlows: number
    /** SO_MARK of the outbound and reply sockets; 0 = none. */
    mark: number
    /**
     * Datagrams of a new flow copied to the callback while it waits for its
     * route, the first included (1-16; default 1): 'new', then up to
     * sniffDatagrams - 1 'more'.
     */
    sniffDatagrams?: number
  }
  interface UdpFlowEnds {
    /** The flow's number since start. */
    id: number
    family: 4 | 6
    /** The client. */
    src: string
    srcPort: number
    /** The first original destination. */
    dst: string
    dstPort: number
  }
  /** A new flow: answer it with udpRoute(id, ...); its datagrams wait (bounded) meanwhile. */
  export interface UdpNewFlow extends UdpFlowEnds {
    type: 'new'
    /** A copy of its first datagram. */
    data: ArrayBuffer
  }
  /** A later datagram of a flow still waiting for its route (see sniffDatagrams). */
  export interface UdpMoreData extends UdpFlowEnds {
    type: 'more'
    /** A copy of the datagram. */
    data: ArrayBuffer
  }
  /** A flow's route and traffic so far; ms since it opened. */
  interface UdpFlowCounters {
    action: 'direct' | 'forward' | 'reject' | 'upstream' | 'pending'
    packetsUp: number
    bytesUp: number
    packetsDown: number
    bytesDown: number
    ms: number
  }
  export interface UdpEndedFlow extends UdpFlowEnds, UdpFlowCounters {
    type: 'end'
    reason: 'idle' | 'evicted' | 'closed' | 'shutdown'
  }
  /** New flows of this listener dropped since the last such event (at most one a second): too many waited for their route. */
  export interface UdpBusy {
    type: 'busy'
    dropped: number
  }
  export type UdpEvent = UdpNewFlow | UdpMoreData | UdpEndedFlow | UdpBusy
  /**
   * A transparent UDP listener (IP_TRANSPARENT, original destinations;
   * "::" takes IPv4 too). The UDP thread starts with the first one. Keeps the
   * loop alive until udpClose. Throws NativeError when it cannot bind.
   */
  export function udpListen(
    addr: string,
    port: number,
    opts: UdpListenerOptions,
    cb: (ev: UdpEvent) => void,
  ): { id: number; addr: string; port: number; family: 4 | 6 }
  /** New options for the listener's next flows; false when the id is unknown. */
  export function udpListenerSet(id: number, opts: UdpListenerOptions): boolean
  /** Close the listener and end its flows ('closed'); false when already closed. */
  export function udpClose(id: number): boolean
  export type UdpRoute =
    | { action: 'direct' }
    | { action: 'reject' }
    /** Every datagram to addr:port (a numeric IP of the client's family). */
    | { action: 'forward'; addr: string; port: number }
    /** To a SOCKS5 server's UDP relay at addr:port (its UDP ASSOCIATE), a header naming each datagram's destination. */
    | { action: 'upstream'; addr: string; port: number }
  /** Route a new flow: '' or an errno name (ENOENT: the flow already ended). */
  export function udpRoute(flow: number, route: UdpRoute): string
  /** End one flow (reason 'closed'); false when there is none with this id. */
  export function udpFlowClose(id: number): boolean
  /** End every flow ('shutdown'). */
  export function udpCloseAll(): void
  export interface UdpStats {
    flowsLive: number
    flowsPending: number
    /** The most flows that waited for their route at once since start. */
    flowsPendingPeak: number
    flowsTotal: number
    flowsExpired: number
    flowsEvicted: number
    replySockets: number
    packetsUp: number
    bytesUp: number
    packetsDown: number
    bytesDown: number
    /** Datagrams dropped, by reason. */
    drops: {
      queueFull: number
      rejected: number
      busy: number
      noOrigDst: number
      truncated: number
      sendFailed: number
      replySocket: number
      noMemory: number
    }
  }
  export function udpStats(): UdpStats
  export interface UdpFlowInfo extends UdpFlowEnds, UdpFlowCounters {
    /** The native listener id. */
    listener: number
    idleMs: number
  }
  export function udpFlows(): UdpFlowInfo[]

  // ---- SOCKS5 UDP ASSOCIATE relays (native/socks_udp.c, mod_socks_udp.c) --
  /** A destination the client named for the first time: answer with socksUdpRoute. */
  export interface SocksUdpDest {
    type: 'dest'
    dest: number
    /** IPv4/IPv6 text, or the domain as the client sent it. */
    host: string
    port: number
  }
  export interface SocksUdpEnd {
    type: 'end'
    reason: 'idle' | 'closed'
    packetsUp: number
    bytesUp: number
    packetsDown: number
    bytesDown: number
    ms: number
  }
  export type SocksUdpEvent = SocksUdpDest | SocksUdpEnd
  /**
   * A relay socket at bindAddr (kernel's port) for the client at clientAddr
   * (clientPort 0: its first datagram's port). The callback's last event is
   * 'end'. Throws NativeError when it cannot bind.
   */
  export function socksUdpOpen(
    bindAddr: string,
    clientAddr: string,
    clientPort: number,
    opts: { idleMs: number; mark: number },
    cb: (ev: SocksUdpEvent) => void,
  ): { id: number; addr: string; port: number; family: 4 | 6 }
  export type SocksUdpRoute =
    | { action: 'reject' }
    /** direct: to addr:port; forward: to addr:port, replies shown as from the named destination. */
    | { action: 'direct' | 'forward'; addr: string; port: number }
    /** Header and all to a SOCKS5 server's UDP relay at addr:port. */
    | { action: 'upstream'; addr: string; port: number }
  /** '' or an errno name (ENOENT: the association or destination is gone). */
  export function socksUdpRoute(assoc: number, dest: number, route: SocksUdpRoute): string
  /** End it ('closed' event follows); false when it had ended already. */
  export function socksUdpClose(assoc: number): boolean
  export interface SocksUdpStats {
    associationsLive: number
    associationsTotal: number
    packetsUp: number
    bytesUp: number
    packetsDown: number
    bytesDown: number
    /** Destinations retired over an association's cap (64), least recently used first. */
    destsEvicted: number
    /** Segmented (UDP_SEGMENT) sends the kernel refused: sent again one datagram at a time. */
    gsoRefused: number
    /** Datagrams dropped, by reason. */
    drops: {
      foreign: number
      fragment: number
      malformed: number
      rejected: number
      queueFull: number
      sendFailed: number
    }
  }
  export function socksUdpStats(): SocksUdpStats
  // ---- the gate (native/mod_gate.c): admission, and the native forward ----
  /**
   * Count a new connection from `ip` (the text accept gives): its id (> 0,
   * also the number of connections admitted so far), or -1 when
   * maxConnections refuses it, -2 when maxPerSource does. One count for
   * every listener, native forwards included; release(ip) when it is over.
   */
  export function admit(ip: string): number
  export function release(ip: string): void
  /** The limits admit applies (0 = none); live connections stay. */
  export function setLimits(maxConnections: number, maxPerSource: number): void
  export interface GateStats {
    /** Connections admitted since start (every listener). */
    total: number
    /** Connections admitted and not released. */
    live: number
    /** Of those, native forwards not yet reported to onForwardEvents (their relays are in relayStats). */
    forwardLive: number
    /** Native SOCKS5 CONNECTs whose route JS was asked for, and those C answered from a kept answer. */
    socksAsked: number
    socksKept: number
    /** Kept answers now, and rule sets handed over (socksKeep calls). */
    socksKeptRoutes: number
    socksRuleSets: number
  }
  export function gateStats(): GateStats
  /** How a listener is served in C: a native forward, or the native SOCKS5 handshake. */
  export type GateOptions = ForwardOptions | SocksOptions
  export interface ForwardOptions extends GateCommon {
    kind: 'forward'
    /** The target's text, for the access line and the connection list. */
    dst: string
    /** The target: a numeric IP and port. */
    addr: string
    port: number
  }
  export interface SocksOptions extends GateCommon {
    kind: 'socks'
    /** The listener's type (socks, mixed), for the connection list. */
    type: string
    /** The handshake's time limit (reason handshake-timeout). */
    handshakeMs: number
    /** The accounts (RFC 1929), flat: user, password, user, password, ... */
    users: string[]
    /** ugate's listening sockets: an address among them is never dialed (reason loop, reply 0x02). */
    own: SockAddr[]
  }
  interface GateCommon {
    /** Listener name, for the access line and the connection list. */
    name: string
    /** Source CIDRs admitted ("10.0.0.0/8", "::1/128"); others get a RST. */
    allow: string[]
    /** SO_MARK of the outbound socket; 0 = none. */
    mark: number
    /** Connect timeout (reason connect-timeout). */
    timeoutMs: number
    splice: boolean
    /** Relay idle timeout; 0 = never. */
    idleMs: number
  }
  /**
   * Serve the listening socket fd in C from now on: accept until EAGAIN, allow
   * list, admit, dial, relay, with no JS per connection. A second call on the
   * same fd replaces the options (reload); live connections keep theirs.
   */
  export function forwardServe(fd: number, opts: GateOptions): void
  /** Stop serving fd (before closing it, or to serve it from JS again); false if not served. */
  export function forwardStop(fd: number): boolean
  /**
   * An access line's fields, in its order (listener src dst up down ms reason
   * splice, then a SOCKS connection's user dnsName rule action via when set);
   * splice 0 or 1.
   */
  export type ForwardDone = Omit<import('../core/log.js').AccessRecord, 'splice'> & {
    splice: number
    user?: string
    dnsName?: string
    rule?: string
    action?: string
    via?: string
  }
  /**
   * A refused client (`denied`: allow list, `limit`: admission), a paused
   * listener (out of fds) or a malformed SOCKS5 message (`invalid`: error names it).
   */
  export interface ForwardEvent {
    kind: 'denied' | 'limit' | 'paused' | 'invalid'
    listener: string
    src?: string
    limit?: string
    error?: string
  }
  /**
   * cb gets a batch: every native connection finished since the last one,
   * and the events. `lines`: their access lines as C formatted them (whole
   * lines, level info, each ending in "\n"; '' if none). `counts`: what they
   * add to /metrics, one group of alike connections per 8 entries: listener,
   * action ('none' if not routed), reason, connections, relayed (0/1), splice
   * (0/1), bytes up, bytes down. `conns`: the few whose fields C does not
   * format (a byte ≥ 0x80 in a field, or more groups than C keeps), for JS to
   * log and count (relayed[i]: conns[i] reached its relay). Read only: an
   * empty list is one array shared by every batch.
   */
  export function onForwardEvents(
    cb: (
      lines: string,
      counts: ReadonlyArray<string | number>,
      conns: readonly ForwardDone[],
      relayed: readonly boolean[],
      events: readonly ForwardEvent[],
    ) => void,
  ): void
  /**
   * A native SOCKS connection JS is asked about. `first`: not SOCKS5 (data:
   * the bytes read); `request`: a request C does not serve (data starts with
   * it); JS owns fd (and the admission) from the call on. `route`: a CONNECT
   * to host:dstPort (data: bytes the client sent after it, if any); JS
   * answers with a SocksAnswer, or undefined when it takes the connection.
   */
  export interface SocksAsk {
    kind: 'first' | 'request' | 'route'
    id: number
    listener: string
    src: string
    addr: string
    port: number
    family: 4 | 6
    fd: number
    /** What is left of the handshake timeout (≥ 1): a connection JS takes runs on from there. */
    leftMs: number
    user?: string
    data?: ArrayBuffer
    host?: string
    dstPort?: number
    dst?: string
  }
  /**
   * Dial addr:port (an IP, or a host name C resolves and whose addresses it
   * tries in order) and relay, or refuse with a SOCKS5 reply code (reason rejected).
   * keep: the answer is a function of the request alone (listener, host, port;
   * the source too under socksKeep(true)) until the next socksKeep: C answers
   * the same request again itself, counting the rule's hit (socksKeptHits).
   */
  export type SocksAnswer =
    | { addr: string; port: number; rule: string; action: string; via?: string; dnsName?: string; keep?: boolean }
    | { reply: number; rule?: string; action?: string; dnsName?: string; keep?: boolean }
    | undefined
  /** cb answers every `route` item (in order; other items' answers are not read). */
  export function onSocksRequests(cb: (items: SocksAsk[]) => SocksAnswer[]): void
  /**
   * A new rule set: the kept answers go, and answers are kept (keyed by the
   * client's address too when bySource) from here. Returns the hits
   * socksKeptHits had not returned yet (the old rule set's).
   */
  export function socksKeep(bySource: boolean): KeptHits
  /** Rule hits of CONNECTs C answered from kept answers since the last call: [rule, hits, last hit's wallClock, ...]. */
  export function socksKeptHits(): KeptHits
  export type KeptHits = Array<string | number>
  /** ugate's DNS learnt a name for this address (its ipKey): kept answers for it as a host go. */
  export function socksKeptForget(host: string): void
  export interface ForwardConn {
    id: number
    listener: string
    /** The listener's type (forward, socks, mixed). */
    type: string
    src: string
    stage: 'handshake' | 'relay'
    ms: number
    /** Unknown while a SOCKS handshake reads the request. */
    dst?: string
    user?: string
    dnsName?: string
    rule?: string
    action?: string
    via?: string
    /** Its relay's id once relaying: its bytes so far are in relayBytes(). */
    relay?: number
  }
  export function forwardConnections(): ForwardConn[]
  /** End one native connection (reason 'closed'); false when there is none with this id. */
  export function forwardClose(id: number): boolean
  /** End every native connection still dialing (reason 'shutdown'). */
  export function forwardCancelDialing(): void

  // ---- HBONE (native/mod_hbone.c, native/hbone.c) ----
  /** A TLS config handle (tlsConfig). */
  export type TlsHandle = TlsConfig
  /**
   * Serve an accepted socket as an HBONE tunnel (mTLS + HTTP/2 in C); returns the tunnel id.
   * reverseOk: the client may ask for a reverse tunnel (ALPN ugate-rev; a `reverse` event says so).
   * ping: the keep-alive of a reverse tunnel it accepts (a plain served connection is PINGed by its client).
   */
  export function hboneServe(
    fd: number,
    tls: TlsHandle,
    peerAddr: string,
    reverseOk?: boolean,
    ping?: HbonePingOptions,
  ): number
  /** Answer a `request` with 200 and bridge the stream to fd (taken), `initial` bytes first. */
  export function hboneAccept(tunnel: number, stream: number, fd: number, initial?: Uint8Array): void
  /**
   * Answer a `request` with 200 and serve the stream as an HBONE connection of
   * its own (the inner connection of double HBONE); returns its tunnel id.
   */
  export function hboneServeStream(tunnel: number, stream: number, tls: TlsHandle, peerAddr: string): number
  /** Answer a `request` with status (400, 401, 503, ...): the stream ends. */
  export function hboneRefuse(tunnel: number, stream: number, status: number): void
  /**
   * A mesh connection's keep-alive (config.ts PingTiming): a PING every
   * pingIntervalMs, dead without its ACK within pingTimeoutMs (absent or 0:
   * the engine's 10 s, 20 s). hboneOpen: for a connection it dials.
   */
  export interface HbonePingOptions {
    pingIntervalMs?: number
    pingTimeoutMs?: number
  }
  export interface HboneOpenOptions extends HbonePingOptions {
    /** Pool key: streams with the same key share connections (up to 100 each). */
    key: string
    /** The peer: an IP literal and port (not with `tunnel`). */
    addr?: string
    port?: number
    /** A reverse tunnel the peer registered here: the stream goes on it, nothing is dialed. */
    tunnel?: number
    mark: number
    /** The SPIFFE id the peer must present; "spiffe://TD" = any id of TD; '' = any the TLS config trusts. */
    expect: string
    authority: string
    baggage: string
    forwarded: string
    traceparent: string
    /** The peer's node id, checked after the handshake (closed as node-mismatch); absent = any. */
    node?: string
    /**
     * Double HBONE: no address of the peer is dialed; its connection (pool `key`)
     * runs inside a CONNECT to `authority` on the relay's pooled connections.
     * Refused by the relay: the stream fails with reason relay-refused-STATUS.
     */
    via?: { key: string; addr: string; port: number; expect: string; authority: string }
  }
  /** Open a CONNECT stream; returns [tag, fd]: fd is the stream's local end (a socket pair). */
  export function hboneOpen(opts: HboneOpenOptions, tls: TlsHandle): [number, number]
  export function hboneCloseAll(): void
  export interface HboneReverseOptions extends HbonePingOptions {
    /** The public gate's SPIFFE id; '' = any the TLS config trusts. */
    expect: string
  }
  /**
   * The dialing side of a reverse tunnel on a socket connected to a public
   * gate's hbone listener: returns the tunnel id (`reverse` event when up,
   * `closed` when over; its CONNECTs come as `request` events).
   */
  export function hboneReverse(fd: number, tls: TlsHandle, peerAddr: string, opts: HboneReverseOptions): number
  /**
   * Close one tunnel: a reverse tunnel refused (GOAWAY REFUSED_STREAM) or replaced by a newer
   * one; or stopped: GOAWAY, closed once its open streams are over.
   */
  export function hboneClose(tunnel: number, why: 'refused' | 'replaced' | 'stopped'): void
  /** Accept a reverse tunnel a listener's `reverse` event offered: its HTTP/2 starts, streams may go on it. */
  export function hboneReverseAccept(tunnel: number): void
  export interface HboneEvent {
    /**
     * request: a CONNECT to route; opened: a client stream's answer; done: a
     * stream is over; closed: a tunnel is; reverse: a listener's tunnel asks to be
     * registered as a reverse tunnel (hboneReverseAccept or hboneClose), or the
     * other gate accepted the one hboneReverse dialed.
     */
    kind: 'request' | 'opened' | 'done' | 'closed' | 'reverse'
    tunnel: number
    stream: number
    /** Client streams: hboneOpen's tag; 0 for server streams. */
    tag: number
    peerAddr: string
    authority: string
    baggage: string
    forwarded: string
    traceparent: string
    peerId: string
    peerNode: string
    /** opened: the :status (0: no answer, see reason); closed: streams the tunnel carried. */
    status: number
    reason: string
    error: string
    toTunnel: number
    toSocket: number
    /** closed: the transport's error (e.g. why the TLS handshake failed), '' when none. */
    detail: string
  }
  export function onHboneEvents(cb: (batch: HboneEvent[]) => void): void
  export interface HboneTunnelStats {
    id: number
    role: 'server' | 'client'
    /** A reverse tunnel (HTTP/2 roles swapped). */
    reverse?: boolean
    peer: string
    peerId: string
    pool?: string
    state: 'handshake' | 'open' | 'closing'
    streams: number
    streamsTotal: number
    bytesOut: number
    bytesIn: number
    /** Last PING round trip (client side); -1 before the first. */
    rttMs: number
    ageMs: number
  }
  export function hboneStats(): HboneTunnelStats[]
}
