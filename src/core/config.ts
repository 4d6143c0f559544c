// The typed config and its one validator. Input is plain JSON (seconds);
// output is typed, with defaults filled in and durations in milliseconds.
// Every error names the path and the bad value.

import { type Endpoint, formatEndpoint, listenAddressesClash, parseEndpoint } from './address.js'
import { AddressError, ConfigError, show } from './errors.js'
import { LOG_LEVELS, type LogLevel, isLogLevel } from './log.js'

export interface Config {
  log: { level: LogLevel }
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
  listeners: ListenerConfig[]
}

interface ListenerCommon {
  name: string
  listen: Endpoint
  backlog: number
}

/** Relays every accepted connection to one fixed target. */
export interface ForwardListenerConfig extends ListenerCommon {
  type: 'forward'
  target: Endpoint
}

/** Discriminated on `type`; a new listener type adds a member here and a parser below. */
export type ListenerConfig = ForwardListenerConfig
export type ListenerType = ListenerConfig['type']

/** Defaults of the JSON config (seconds). */
export const DEFAULTS = {
  logLevel: 'info' as LogLevel,
  splice: true,
  idleTimeout: 900,
  shutdownGrace: 5,
  connectTimeout: 10,
  mark: 0,
  backlog: 511,
}

export interface SecondsRange {
  min: number
  max: number
  note?: string
}

/** Accepted ranges of the duration settings, shared with the CLI flags. */
export const SECONDS: Record<'idleTimeout' | 'shutdownGrace' | 'connectTimeout', SecondsRange> = {
  // The upper bounds keep milliseconds within a signed 32-bit timer value.
  idleTimeout: { min: 0, max: 2147483, note: '0 = never' },
  shutdownGrace: { min: 0, max: 3600 },
  connectTimeout: { min: 0.001, max: 3600 },
}

export function inSecondsRange(v: unknown, range: SecondsRange): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= range.min && v <= range.max
}

/** "a number of seconds from 0 to 3600", for error messages. */
export function describeSeconds(range: SecondsRange): string {
  const note = range.note ? ` (${range.note})` : ''
  return `a number of seconds from ${range.min} to ${range.max}${note}`
}

export const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/

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
  checkKeys(root, '', ['log', 'relay', 'dial', 'listeners'])

  const log = object(given(root.log, {}), 'log')
  checkKeys(log, 'log', ['level'])
  const relay = object(given(root.relay, {}), 'relay')
  checkKeys(relay, 'relay', ['splice', 'idleTimeout', 'shutdownGrace'])
  const dial = object(given(root.dial, {}), 'dial')
  checkKeys(dial, 'dial', ['connectTimeout', 'mark'])

  return {
    log: { level: logLevel(given(log.level, DEFAULTS.logLevel), 'log.level') },
    relay: {
      splice: boolean(given(relay.splice, DEFAULTS.splice), 'relay.splice'),
      idleTimeoutMs: ms(given(relay.idleTimeout, DEFAULTS.idleTimeout), 'relay.idleTimeout', SECONDS.idleTimeout),
      shutdownGraceMs: ms(given(relay.shutdownGrace, DEFAULTS.shutdownGrace), 'relay.shutdownGrace', SECONDS.shutdownGrace),
    },
    dial: {
      connectTimeoutMs: ms(given(dial.connectTimeout, DEFAULTS.connectTimeout), 'dial.connectTimeout', SECONDS.connectTimeout),
      mark: integer(given(dial.mark, DEFAULTS.mark), 'dial.mark', 0, 0xffffffff),
    },
    listeners: listeners(root.listeners),
  }
}

// ---- listeners ---------------------------------------------------------------

type Obj = Record<string, unknown>

interface ListenerSpec<T extends ListenerType> {
  /** Keys this type accepts besides name, type, listen and backlog. */
  keys: readonly string[]
  parse(obj: Obj, path: string, common: ListenerCommon): Extract<ListenerConfig, { type: T }>
}

const LISTENER_SPECS: { [T in ListenerType]: ListenerSpec<T> } = {
  forward: {
    keys: ['target'],
    parse: (obj, path, common) => ({
      ...common,
      type: 'forward',
      target: endpoint(required(obj, 'target', path), `${path}.target`, 'target'),
    }),
  },
}

const LISTENER_TYPES = Object.keys(LISTENER_SPECS) as ListenerType[]
const COMMON_KEYS = ['name', 'type', 'listen', 'backlog']

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
  const spec: ListenerSpec<ListenerType> = LISTENER_SPECS[type]
  checkKeys(obj, path, [...COMMON_KEYS, ...spec.keys])
  const name = required(obj, 'name', path)
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new ConfigError(`${path}.name`, `${show(name)} is not a name of 1-64 letters, digits, "_" or "-"`)
  }
  const common: ListenerCommon = {
    name,
    listen: endpoint(required(obj, 'listen', path), `${path}.listen`, 'listen'),
    backlog: integer(given(obj.backlog, DEFAULTS.backlog), `${path}.backlog`, 1, 65535),
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
