// argv → a command. Values are checked here, so a bad one is reported with
// the flag that carried it; run-config.ts later merges them with the file.

import { parseEndpoint } from './address.js'
import { SECONDS, type SecondsRange, describeSeconds, inSecondsRange } from './config.js'
import { parseConnId } from './clash-api.js'
import { AddressError, CliError, show } from './errors.js'
import { IDENTITY_DEFAULTS, MAX_DAYS, type SpiffeId, segmentProblem, trustDomainProblem } from './identity.js'
import { LOG_LEVELS, type LogLevel, isLogLevel } from './log.js'

/** A --forward LISTEN=TARGET, both sides already known to parse. */
export interface ForwardSpec {
  listen: string
  target: string
}

/** `ugate run` flags; an absent field leaves the file's (or default) value. */
export interface RunOptions {
  configFile?: string
  forwards: ForwardSpec[]
  logLevel?: LogLevel
  /** Syslog socket (the init script passes /dev/log under procd). */
  logSyslog?: string
  /** false from --no-splice. */
  splice?: boolean
  /** Seconds. */
  idleTimeout?: number
  /** Seconds. */
  grace?: number
}

export type Command =
  | { kind: 'run'; options: RunOptions }
  | { kind: 'check'; configFile: string }
  | { kind: 'nft'; configFile: string }
  /** id: a TCP connection's number, or a UDP flow's "udp-N" (clash-api.ts ConnRef). */
  | { kind: 'ctl'; socket: string; method: CtlMethod; json: boolean; id?: number | string }
  | { kind: 'sniff-quic'; files: string[]; packets: boolean }
  | { kind: 'identity-init'; dir: string; id: SpiffeId; days: number; force: boolean }
  | { kind: 'identity-show'; dir: string }
  | { kind: 'help' }
  | { kind: 'version' }

const SEE_HELP = '(see "ugate --help")'

/** What `ugate ctl` can ask a running gateway (over its admin socket). */
const CTL_METHODS = ['status', 'connections', 'rules', 'traffic', 'close'] as const
export type CtlMethod = (typeof CTL_METHODS)[number]
/** The admin socket of the OpenWrt package (files/etc/config/ugate). */
const DEFAULT_ADMIN_SOCKET = '/var/run/ugate.sock'

/** Parse the arguments after the program name; throws CliError. */
export function parseArgs(argv: readonly string[]): Command {
  const [first, ...rest] = argv
  switch (first) {
    case undefined:
      throw new CliError(`missing command ${SEE_HELP}`)
    case 'help':
    case '--help':
    case '-h':
      return { kind: 'help' }
    case '--version':
    case '-V':
      return { kind: 'version' }
    case 'run':
      return parseRun(rest)
    case 'check':
      return parseCheck(rest)
    case 'nft': {
      const c = parseCheck(rest, 'nft')
      return c.kind === 'check' ? { kind: 'nft', configFile: c.configFile } : c
    }
    case 'ctl':
      return parseCtl(rest)
    case 'sniff-quic':
      return parseSniffQuic(rest)
    case 'identity':
      return parseIdentity(rest)
    default:
      if (first.startsWith('-')) throw new CliError(`unknown option ${show(first)} ${SEE_HELP}`)
      throw new CliError(`unknown command ${show(first)} ${SEE_HELP}`)
  }
}

function parseRun(args: readonly string[]): Command {
  const options: RunOptions = { forwards: [] }
  for (const opt of readOptions(args, 'run', RUN_FLAGS)) {
    switch (opt.flag) {
      case '--help':
      case '-h':
        return { kind: 'help' }
      case '--config':
        options.configFile = opt.value
        break
      case '--forward':
        options.forwards.push(forwardSpec(opt.value))
        break
      case '--log-level':
        if (!isLogLevel(opt.value)) {
          throw new CliError(`--log-level: ${show(opt.value)} is not one of ${LOG_LEVELS.join(', ')}`)
        }
        options.logLevel = opt.value
        break
      case '--log-syslog':
        options.logSyslog = opt.value
        break
      case '--no-splice':
        options.splice = false
        break
      case '--idle-timeout':
        options.idleTimeout = seconds(opt, SECONDS.idleTimeout)
        break
      case '--grace':
        options.grace = seconds(opt, SECONDS.shutdownGrace)
        break
    }
  }
  return { kind: 'run', options }
}

function parseCheck(args: readonly string[], command = 'check'): Command {
  let configFile: string | undefined
  for (const opt of readOptions(args, command, CHECK_FLAGS)) {
    if (opt.flag === '--help' || opt.flag === '-h') return { kind: 'help' }
    configFile = opt.value
  }
  if (configFile === undefined) throw new CliError(`"ugate ${command}" needs --config FILE`)
  return { kind: 'check', configFile }
}

function parseCtl(args: readonly string[]): Command {
  // Words that are not flags or a flag's value: the method, then close's ID.
  const words: string[] = []
  const flags: string[] = []
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a.startsWith('-')) {
      flags.push(a)
      if (a === '--socket' && i + 1 < args.length) flags.push(args[++i]!)
    } else words.push(a)
  }
  let socket = DEFAULT_ADMIN_SOCKET
  let json = false
  for (const opt of readOptions(flags, 'ctl', CTL_FLAGS)) {
    if (opt.flag === '--help' || opt.flag === '-h') return { kind: 'help' }
    if (opt.flag === '--json') json = true
    else socket = opt.value
  }
  const [method, ...rest] = words
  if (method === undefined) throw new CliError(`"ugate ctl" needs a method: ${CTL_METHODS.join(', ')}`)
  if (!(CTL_METHODS as readonly string[]).includes(method)) {
    throw new CliError(`ctl: ${show(method)} is not a method (known: ${CTL_METHODS.join(', ')})`)
  }
  if (method === 'close') {
    if (rest.length !== 1) throw new CliError('"ugate ctl close" needs one connection ID (see "ugate ctl connections")')
    const id = rest[0]!
    const ref = parseConnId(id)
    if (ref === null) throw new CliError(`ctl close: ${show(id)} is not a connection ID (17, or udp-17 for a UDP flow)`)
    return { kind: 'ctl', socket, method, json, id: ref.network === 'tcp' ? ref.id : id }
  }
  if (rest.length > 0) throw new CliError(`unexpected argument ${show(rest[0]!)} for "ugate ctl ${method}" ${SEE_HELP}`)
  return { kind: 'ctl', socket, method: method as CtlMethod, json }
}

function parseSniffQuic(args: readonly string[]): Command {
  const files = args.filter((a) => !a.startsWith('-'))
  let packets = false
  for (const opt of readOptions(
    args.filter((a) => a.startsWith('-')),
    'sniff-quic',
    SNIFF_QUIC_FLAGS,
  )) {
    if (opt.flag === '--help' || opt.flag === '-h') return { kind: 'help' }
    packets = true
  }
  if (files.length === 0) throw new CliError('"ugate sniff-quic" needs at least one FILE (a UDP payload)')
  return { kind: 'sniff-quic', files, packets }
}

function parseIdentity(args: readonly string[]): Command {
  const [sub, ...flags] = args
  if (sub === '--help' || sub === '-h') return { kind: 'help' }
  if (sub !== 'init' && sub !== 'show') {
    throw new CliError(`"ugate identity" needs init or show, got ${sub === undefined ? 'nothing' : show(sub)}`)
  }
  const d = IDENTITY_DEFAULTS
  let dir: string = d.dir
  const id: SpiffeId = { trustDomain: d.trustDomain, namespace: d.namespace, serviceAccount: d.serviceAccount }
  let days: number = d.days
  let force = false
  for (const opt of readOptions(flags, `identity ${sub}`, sub === 'init' ? IDENTITY_INIT_FLAGS : IDENTITY_SHOW_FLAGS)) {
    switch (opt.flag) {
      case '--help':
      case '-h':
        return { kind: 'help' }
      case '--dir':
        dir = opt.value
        break
      case '--trust-domain':
        id.trustDomain = checked(opt, trustDomainProblem(opt.value))
        break
      case '--namespace':
        id.namespace = checked(opt, segmentProblem(opt.value))
        break
      case '--sa':
        id.serviceAccount = checked(opt, segmentProblem(opt.value))
        break
      case '--days':
        days = /^[0-9]+$/.test(opt.value) ? Number(opt.value) : NaN
        if (!(days >= 1 && days <= MAX_DAYS)) {
          throw new CliError(`--days: ${show(opt.value)} is not a whole number of days from 1 to ${MAX_DAYS}`)
        }
        break
      case '--force':
        force = true
        break
    }
  }
  return sub === 'init' ? { kind: 'identity-init', dir, id, days, force } : { kind: 'identity-show', dir }
}

function checked(opt: Option, problem: string | null): string {
  if (problem !== null) throw new CliError(`${opt.flag}: ${show(opt.value)} ${problem}`)
  return opt.value
}

// ---- option reading -------------------------------------------------------------

/** Flag → the name of its value, or null for a flag without one. */
type FlagTable = Record<string, string | null>

const RUN_FLAGS: FlagTable = {
  '--config': 'FILE',
  '--forward': 'LISTEN=TARGET',
  '--log-level': 'LEVEL',
  '--log-syslog': 'PATH',
  '--no-splice': null,
  '--idle-timeout': 'SEC',
  '--grace': 'SEC',
  '--help': null,
  '-h': null,
}

const CHECK_FLAGS: FlagTable = { '--config': 'FILE', '--help': null, '-h': null }
const CTL_FLAGS: FlagTable = { '--socket': 'PATH', '--json': null, '--help': null, '-h': null }
const SNIFF_QUIC_FLAGS: FlagTable = { '--packets': null, '--help': null, '-h': null }
const IDENTITY_SHOW_FLAGS: FlagTable = { '--dir': 'DIR', '--help': null, '-h': null }
const IDENTITY_INIT_FLAGS: FlagTable = {
  ...IDENTITY_SHOW_FLAGS,
  '--trust-domain': 'TD',
  '--namespace': 'NS',
  '--sa': 'SA',
  '--days': 'N',
  '--force': null,
}

interface Option {
  flag: string
  value: string
}

/** Accepts "--flag value" and "--flag=value"; later flags override earlier ones. */
function readOptions(args: readonly string[], command: string, table: FlagTable): Option[] {
  const out: Option[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (!arg.startsWith('-')) throw new CliError(`unexpected argument ${show(arg)} for "ugate ${command}" ${SEE_HELP}`)
    const eq = arg.indexOf('=')
    const flag = eq >= 0 ? arg.slice(0, eq) : arg
    const valueName = table[flag]
    if (valueName === undefined || !Object.hasOwn(table, flag)) {
      throw new CliError(`unknown option ${show(flag)} for "ugate ${command}" ${SEE_HELP}`)
    }
    if (valueName === null) {
      if (eq >= 0) throw new CliError(`option ${flag} takes no value, got ${show(arg.slice(eq + 1))}`)
      out.push({ flag, value: '' })
      continue
    }
    // "--config --no-splice" is a forgotten value, not a file named "--no-splice".
    const value = eq >= 0 ? arg.slice(eq + 1) : args[i + 1]?.startsWith('--') ? undefined : args[++i]
    if (value === undefined || value === '') throw new CliError(`option ${flag} needs a value (${valueName})`)
    out.push({ flag, value })
  }
  return out
}

function forwardSpec(value: string): ForwardSpec {
  const parts = value.split('=')
  if (parts.length !== 2) {
    throw new CliError(`--forward ${show(value)}: expected LISTEN=TARGET, e.g. 127.0.0.1:6000=127.0.0.1:5201`)
  }
  const [listen, target] = parts as [string, string]
  try {
    parseEndpoint(listen, 'listen')
    parseEndpoint(target, 'target')
  } catch (e) {
    if (e instanceof AddressError) throw new CliError(`--forward ${show(value)}: ${e.message}`)
    throw e
  }
  return { listen, target }
}

function seconds(opt: Option, range: SecondsRange): number {
  const n = /^[0-9]+(\.[0-9]+)?$/.test(opt.value) ? Number(opt.value) : NaN
  if (!inSecondsRange(n, range)) throw new CliError(`${opt.flag}: ${show(opt.value)} is not ${describeSeconds(range)}`)
  return n
}

// ---- help ----------------------------------------------------------------------------

export function helpText(): string {
  return `ugate - a tiny TCP gateway

Usage:
  ugate run [--config FILE] [--forward LISTEN=TARGET]... [options]
  ugate check --config FILE
  ugate nft --config FILE
  ugate ctl [--socket PATH] [--json] status|connections|rules|traffic
  ugate ctl [--socket PATH] [--json] close ID
  ugate sniff-quic [--packets] FILE...
  ugate identity init [--dir DIR] [--trust-domain TD] [--namespace NS]
                      [--sa SA] [--days N] [--force]
  ugate identity show [--dir DIR]
  ugate help | --help | -h
  ugate --version | -V

Commands:
  run       Start the gateway. Without --config and --forward it runs a
            mixed SOCKS4/4a/5 + HTTP proxy on 127.0.0.1:1080, routing
            everything direct.
  check     Validate a config file and print "config ok".
  nft       Print the nftables ruleset (table inet ugate) that "run"
            loads for the config's capture section.
  ctl       Ask a running gateway over its admin socket (default
            ${DEFAULT_ADMIN_SOCKET}): status, live connections,
            rules with hit counts, traffic (a line per second until
            Ctrl-C), or close a connection by ID. Prints tables; with
            --json one JSON object (traffic: one per line).
  sniff-quic  Read the ClientHello in a QUIC client's first datagrams
            (each FILE one UDP payload, in the order sent) as UDP routing
            does; prints the result (status, host, alpn) as JSON, exits 0
            when the ClientHello was read. --packets first prints each
            decrypted Initial packet (version, DCID, frames in hex).
  identity  init: make a self-signed CA (P-256) and a node key and
            certificate it signs, with the URI SAN spiffe://TD/ns/NS/sa/SA
            (defaults ${IDENTITY_DEFAULTS.trustDomain}, ${IDENTITY_DEFAULTS.namespace}, ${IDENTITY_DEFAULTS.serviceAccount}; valid ${IDENTITY_DEFAULTS.days} days), in
            DIR (default ${IDENTITY_DEFAULTS.dir}, must exist): root-cert.pem,
            cert-chain.pem, key.pem, ca-key.pem (keys mode 600; existing
            files are kept unless --force). Prints the node id and the
            SPIFFE id. show: print them with the validity dates and the
            issuer, after checking the dates, the chain against
            root-cert.pem and that key.pem belongs to the certificate.
  help      Show this text.

Options of run:
  --config FILE            Config file: JSON, or uci (/etc/config/ugate).
                           SIGHUP reloads it without dropping connections.
  --forward LISTEN=TARGET  Add a forward listener (repeatable), named fwd1,
                           fwd2, ...; e.g. 127.0.0.1:6000=127.0.0.1:5201,
                           [::1]:6000=[::1]:5201, 127.0.0.1:0=localhost:80
                           (port 0 = any free port). Added to the file's
                           listeners when --config is given too.
  --log-level LEVEL        ${LOG_LEVELS.join(', ')} (default info).
  --log-syslog PATH        Log to this syslog socket (/dev/log) at each
                           line's priority instead of to stderr.
  --no-splice              Copy bytes with read/write instead of splice(2).
  --idle-timeout SEC       Close connections idle this long (default 900,
                           0 = never).
  --grace SEC              On SIGINT/SIGTERM, let connections finish for
                           this long before closing them (default 5).
  Flags override values from the config file.

Exit status: 0 ok, 1 runtime error, 2 bad command line or config.
`
}
