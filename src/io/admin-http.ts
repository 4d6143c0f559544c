// The admin HTTP server (admin.listen): HTTP/1.1 with keep-alive, CORS,
// the bearer secret, and WebSocket or chunked streams for the endpoints that
// push. Event-driven, one watch per socket: a stream reads (pings, close)
// while it writes, which two one-shot waits on one fd cannot do. What each
// route answers is admin-api.ts.

import * as native from 'ugate:native'
import { concatBytes, latin1Encode, utf8Encode } from '../core/bytes.js'
import { type RouteMatch, matchRoute } from '../core/clash-api.js'
import type { Endpoint } from '../core/address.js'
import {
  type RequestHead,
  bodyFraming,
  fieldValue,
  keepAlive,
  listTokens,
  parseRequestHead,
  sameString,
} from '../core/http-proxy.js'
import type { Logger } from '../core/log.js'
import {
  CLOSE,
  OP,
  acceptKey,
  closeCodeOf,
  closePayload,
  encodeFrame,
  isWebSocketKey,
  parseClientFrame,
} from '../core/websocket.js'
import { type Listener, openListener } from './listener.js'
import { closeQuietly, describeError } from './sockets.js'

const MAX_HEAD = 16384
const MAX_BODY = 65536
const MAX_WS_PAYLOAD = 65536
/** Unsent bytes a slow client may leave queued before it is dropped. */
const MAX_QUEUED = 1 << 20
/** To send a whole request head (and body) once the first byte came. */
const REQUEST_TIMEOUT_MS = 10000
/** An idle keep-alive connection is closed after this. */
const IDLE_TIMEOUT_MS = 60000
const MAX_CONNECTIONS = 64

export interface Request {
  method: string
  target: string
  head: RequestHead
  body: Uint8Array
  route: Extract<RouteMatch, { status: 'ok' }>
}

/** A JSON (or text) answer; `status` 204 sends no body. */
export interface Reply {
  status: number
  body?: unknown
  /** Sent as is instead of JSON. */
  text?: string
  contentType?: string
}

/** A pushed stream: `start` gets a send function and returns its stop function. */
export interface Stream {
  start(send: (message: string) => void): () => void
}

export type Answer = Reply | Stream

/** The routes' side: answer one authenticated request. */
export type Respond = (req: Request) => Answer | Promise<Answer>

export interface AdminHttp {
  readonly bound: native.SockAddr
  close(): void
}

const REASONS: Record<number, string> = {
  101: 'Switching Protocols',
  200: 'OK',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  411: 'Length Required',
  413: 'Content Too Large',
  426: 'Upgrade Required',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
}

const CORS: Array<[string, string]> = [
  ['Access-Control-Allow-Origin', '*'],
  ['Access-Control-Allow-Methods', 'GET, POST, PUT, PATCH, DELETE'],
  ['Access-Control-Allow-Headers', 'Content-Type, Authorization'],
  ['Access-Control-Max-Age', '300'],
]

/** Clash's error body: {"message": ...}. */
export function errorReply(status: number, message: string): Reply {
  return { status, body: { message } }
}

export function openAdminHttp(listen: Endpoint, secret: () => string, respond: Respond, log: Logger): AdminHttp {
  const conns = new Set<AdminConn>()
  const listener: Listener = openListener({
    name: 'admin-http',
    type: 'admin',
    listen,
    backlog: 16,
    log,
    onAccept: (c) => {
      if (conns.size >= MAX_CONNECTIONS) {
        log.warn('admin-limit', { src: `${c.addr}:${c.port}`, limit: MAX_CONNECTIONS })
        return closeQuietly(c.fd)
      }
      const conn = new AdminConn(c.fd, secret, respond, log, () => conns.delete(conn))
      conns.add(conn)
    },
  })
  return {
    bound: listener.bound,
    close: () => {
      listener.close()
      for (const c of [...conns]) c.close()
    },
  }
}

type Mode = 'http' | 'busy' | 'ws' | 'stream' | 'closing'

class AdminConn {
  private inbuf: Uint8Array = new Uint8Array(0)
  private out: Uint8Array[] = []
  private queued = 0
  private mode: Mode = 'http'
  private timer: number | null = null
  private stop: (() => void) | null = null
  private closed = false
  private shutAfterWrite = false

  constructor(
    private readonly fd: number,
    private readonly secret: () => string,
    private readonly respond: Respond,
    private readonly log: Logger,
    private readonly gone: () => void,
  ) {
    this.arm(IDLE_TIMEOUT_MS)
    this.watch()
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.stop?.()
    this.stop = null
    this.disarm()
    closeQuietly(this.fd)
    this.gone()
  }

  private watch(): void {
    if (this.closed) return
    const ev = native.EV_READ | (this.out.length > 0 ? native.EV_WRITE : 0)
    native.watch(this.fd, ev, (revents) => this.ready(revents))
  }

  private arm(ms: number): void {
    this.disarm()
    this.timer = native.setTimeout(() => {
      this.timer = null
      this.close()
    }, ms)
  }

  private disarm(): void {
    if (this.timer !== null) native.clearTimeout(this.timer)
    this.timer = null
  }

  private ready(revents: number): void {
    if ((revents & native.EV_WRITE) !== 0 && !this.flush()) return
    if ((revents & (native.EV_READ | native.EV_ERR | native.EV_HUP)) === 0) return
    let chunk: ArrayBuffer | null
    try {
      chunk = native.read(this.fd, 16384)
    } catch {
      return this.close()
    }
    if (chunk === null) return
    if (chunk.byteLength === 0) return this.close()
    if (this.mode === 'stream' || this.mode === 'closing') return // nothing more is read from them
    if (this.inbuf.length + chunk.byteLength > MAX_HEAD + MAX_BODY + MAX_WS_PAYLOAD) return this.close()
    // The first byte of a request starts its clock; more bytes do not extend it.
    if (this.mode === 'http' && this.inbuf.length === 0) this.arm(REQUEST_TIMEOUT_MS)
    this.inbuf = concatBytes([this.inbuf, new Uint8Array(chunk)])
    this.process()
  }

  /** Write what is queued; false when the connection was closed. */
  private flush(): boolean {
    while (this.out.length > 0) {
      let n: number
      try {
        n = native.write(this.fd, this.out[0]!)
      } catch {
        this.close()
        return false
      }
      this.queued -= n
      if (n < this.out[0]!.length) {
        this.out[0] = this.out[0]!.subarray(n)
        break
      }
      this.out.shift()
    }
    if (this.out.length === 0 && this.shutAfterWrite) {
      this.close()
      return false
    }
    this.watch()
    return true
  }

  private send(bytes: Uint8Array): void {
    if (this.closed) return
    if (this.queued + bytes.length > MAX_QUEUED) {
      this.log.debug('admin-slow-client', { queued: this.queued })
      return this.close()
    }
    this.out.push(bytes)
    this.queued += bytes.length
    this.flush()
  }

  private process(): void {
    while (!this.closed) {
      if (this.mode === 'ws') return this.wsFrames()
      if (this.mode !== 'http' || this.inbuf.length === 0) return
      const r = parseRequestHead(this.inbuf, MAX_HEAD)
      if (r.status === 'need-more') return
      if (r.status === 'invalid') return this.fail(r.code, r.error)
      const framing = bodyFraming(r)
      if (framing.kind === 'chunked')
        return this.fail(411, 'chunked request bodies are not accepted: send Content-Length')
      const length = framing.kind === 'length' ? framing.length : 0
      if (length > MAX_BODY) return this.fail(413, `body of ${length} bytes is over the ${MAX_BODY}-byte limit`)
      if (this.inbuf.length < r.consumed + length) return
      const body = this.inbuf.slice(r.consumed, r.consumed + length)
      this.inbuf = this.inbuf.subarray(r.consumed + length)
      this.disarm()
      this.request(r, body)
    }
  }

  private fail(status: number, message: string): void {
    this.reply(errorReply(status, message), false)
    this.mode = 'closing'
  }

  private request(head: RequestHead, body: Uint8Array): void {
    const upgrade = listTokens(head.headers, 'upgrade').includes('websocket')
    // A refused upgrade ends the connection: the client expected to leave HTTP.
    const keep = keepAlive(head) && !upgrade
    const route = matchRoute(head.method, head.target)
    if (head.method === 'OPTIONS') {
      // CORS preflight: no secret asked (browsers send none with it).
      return this.finish({ status: 204 }, keep, CORS)
    }
    if (route.status === 'error') {
      const extra: Array<[string, string]> = route.allow ? [['Allow', route.allow.join(', ')]] : []
      return this.finish(errorReply(route.code, route.message), keep, extra)
    }
    if (!this.authorized(head, route, upgrade)) return this.finish(errorReply(401, 'Unauthorized'), keep)
    if (upgrade) {
      const problem = wsProblem(head)
      if (problem !== null) return this.finish(errorReply(400, problem), false)
    }
    const req: Request = { method: head.method, target: head.target, head, body, route }
    this.mode = 'busy'
    let answer: Answer | Promise<Answer>
    try {
      answer = this.respond(req)
    } catch (e) {
      answer = errorReply(500, describeError(e))
    }
    const go = (a: Answer) => {
      if (this.closed) return
      if ('start' in a) return this.startStream(a, head, upgrade)
      if (upgrade) return this.finish(errorReply(400, `${head.target} is not a stream: no WebSocket here`), false)
      this.finish(a, keep)
    }
    if (answer instanceof Promise) {
      answer.then(go, (e: unknown) => go(errorReply(500, describeError(e))))
    } else go(answer)
  }

  private authorized(head: RequestHead, route: Extract<RouteMatch, { status: 'ok' }>, upgrade: boolean): boolean {
    const secret = this.secret()
    // The live page holds no data: it asks for the secret and sends it with every call.
    if (secret === '' || route.name === 'page') return true
    // Browsers cannot set headers on a WebSocket: dashboards send ?token=.
    const token = route.query.get('token')
    if (upgrade && token !== null && token !== '') return sameString(token, secret)
    const auth = fieldValue(head.headers, 'authorization')
    if (auth === undefined || !auth.startsWith('Bearer ')) return false
    return sameString(auth.slice(7), secret)
  }

  private finish(r: Reply, keep: boolean, extra: Array<[string, string]> = []): void {
    this.reply(r, keep, extra)
    if (!keep) {
      this.mode = 'closing'
      return
    }
    this.mode = 'http'
    this.arm(IDLE_TIMEOUT_MS)
    this.process()
  }

  private reply(r: Reply, keep: boolean, extra: Array<[string, string]> = []): void {
    const body = r.status === 204 ? new Uint8Array(0) : utf8Encode(r.text ?? `${JSON.stringify(r.body ?? {})}\n`)
    const type = r.contentType ?? (r.text !== undefined ? 'text/plain; charset=utf-8' : 'application/json')
    const fields: Array<[string, string]> = [...CORS, ...extra]
    if (r.status !== 204) fields.push(['Content-Type', type], ['Content-Length', String(body.length)])
    if (!keep) fields.push(['Connection', 'close'])
    this.sendHead(r.status, fields)
    if (body.length > 0) this.send(body)
    if (!keep) this.shutAfterWrite = true
    if (!keep && this.out.length === 0) this.close()
  }

  private sendHead(status: number, fields: Array<[string, string]>): void {
    let text = `HTTP/1.1 ${status} ${REASONS[status] ?? 'Unknown'}\r\n`
    for (const [n, v] of fields) text += `${n}: ${v}\r\n`
    this.send(latin1Encode(text + '\r\n'))
  }

  private startStream(s: Stream, head: RequestHead, upgrade: boolean): void {
    if (upgrade) {
      const key = fieldValue(head.headers, 'sec-websocket-key')!
      this.sendHead(101, [
        ['Upgrade', 'websocket'],
        ['Connection', 'Upgrade'],
        ['Sec-WebSocket-Accept', acceptKey(key, native.sha1)],
      ])
      this.mode = 'ws'
      this.stop = s.start((m) => this.send(encodeFrame(OP.TEXT, m)))
      this.process() // frames sent right behind the handshake
      return
    }
    // Plain HTTP: one JSON document per chunk until the client goes away.
    this.sendHead(200, [...CORS, ['Content-Type', 'application/json'], ['Transfer-Encoding', 'chunked']])
    this.mode = 'stream'
    this.inbuf = new Uint8Array(0)
    this.stop = s.start((m) => {
      const data = utf8Encode(`${m}\n`)
      this.send(concatBytes([latin1Encode(`${data.length.toString(16)}\r\n`), data, latin1Encode('\r\n')]))
    })
  }

  private wsFrames(): void {
    while (!this.closed && this.mode === 'ws') {
      const f = parseClientFrame(this.inbuf, MAX_WS_PAYLOAD)
      if (f.status === 'need-more') return
      if (f.status === 'invalid') {
        this.log.debug('admin-ws-invalid', { error: f.error })
        return this.wsClose(f.closeCode, f.error)
      }
      this.inbuf = this.inbuf.subarray(f.consumed)
      if (f.opcode === OP.PING) this.send(encodeFrame(OP.PONG, f.payload))
      else if (f.opcode === OP.CLOSE) {
        const code = closeCodeOf(f.payload)
        return this.wsClose(code === 1005 ? CLOSE.NORMAL : code, '')
      }
      // Text, binary, continuation and pong frames are read and ignored, as mihomo does.
    }
  }

  private wsClose(code: number, reason: string): void {
    this.stop?.()
    this.stop = null
    const valid = code >= 1000 && code < 5000 && code !== 1005 && code !== 1006 && code !== 1015
    this.send(encodeFrame(OP.CLOSE, closePayload(valid ? code : CLOSE.PROTOCOL, reason)))
    this.mode = 'closing'
    this.shutAfterWrite = true
    if (this.out.length === 0) this.close()
  }
}

/** Why a WebSocket upgrade request is not one RFC 6455 §4.2.1 accepts, or null. */
function wsProblem(head: RequestHead): string | null {
  if (head.method !== 'GET') return `a WebSocket handshake must be GET, not ${head.method}`
  if (!listTokens(head.headers, 'connection').includes('upgrade')) return 'Connection must include "Upgrade"'
  if (fieldValue(head.headers, 'sec-websocket-version') !== '13') return 'Sec-WebSocket-Version must be 13'
  const key = fieldValue(head.headers, 'sec-websocket-key')
  if (key === undefined || !isWebSocketKey(key)) return 'Sec-WebSocket-Key must be base64 of 16 bytes'
  return null
}
