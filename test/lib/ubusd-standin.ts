// A small ubusd stand-in for CI (the real ubusd is not packaged by Debian):
// HELLO on connect, ADD_OBJECT answered with DATA {objid, objtype} + STATUS,
// calls forwarded to the object's owner as ubusd forwards them (with USER and
// GROUP), events (`send` on object 1) collected. Ids are fixed so its bytes
// can be compared with the capture from the real ubusd (test/fixtures/ubus).

import { EventEmitter } from 'node:events'
import { rmSync } from 'node:fs'
import net from 'node:net'
import { type JsonValue, decodeFields, decodeTable, encodeTable } from '../../src/core/ubus/blob.js'
import {
  ATTR,
  EVENT_OBJECT,
  MSG,
  type Message,
  MessageReader,
  encodeMessage,
  nested,
  num,
  str,
} from '../../src/core/ubus/message.js'

/** The ids the real ubusd gave in test/fixtures/ubus/real-ugate.txt. */
export const REAL_IDS = { client: 0xef9ef72a, object: 0xcd03638c, objtype: 0x8af4ad2d, caller: 0x7a0e8e08 }

export interface CallResult {
  status: number
  data?: { [k: string]: JsonValue }
}

type Attrs = Array<[number, number | string | Uint8Array]>
const msg = (type: number, seq: number, peer: number, attrs: Attrs): Message => ({
  type,
  seq,
  peer,
  attrs: new Map(attrs),
})

export class UbusdStandin extends EventEmitter {
  /** Every message a client sent, raw. */
  readonly received: Uint8Array[] = []
  readonly events: Array<{ id: string; data: JsonValue }> = []
  signature: Array<[string, { [k: string]: JsonValue }]> | null = null
  private server: net.Server | null = null
  private owner: net.Socket | null = null
  private seq = 1
  private pending = new Map<number, { resolve: (r: CallResult) => void; data?: { [k: string]: JsonValue } }>()

  constructor(readonly path: string) {
    super()
  }

  async start(): Promise<void> {
    rmSync(this.path, { force: true })
    const server = net.createServer((c) => this.serve(c))
    this.server = server
    await new Promise<void>((res) => server.listen(this.path, res))
  }

  /** Close the socket and every connection (ubusd stopping). */
  async stop(): Promise<void> {
    this.owner?.destroy()
    this.owner = null
    this.signature = null
    const s = this.server
    this.server = null
    if (s) await new Promise<void>((res) => s.close(() => res()))
    rmSync(this.path, { force: true })
  }

  /** Invoke a method of the registered object, as `ubus call` would. */
  call(method: string, args: { [k: string]: JsonValue } = {}): Promise<CallResult> {
    const owner = this.owner
    if (!owner) throw new Error('no object registered')
    const seq = ++this.seq
    const m = msg(MSG.INVOKE, seq, REAL_IDS.caller, [
      [ATTR.OBJID, REAL_IDS.object],
      [ATTR.METHOD, method],
      [ATTR.USER, 'root'],
      [ATTR.GROUP, 'root'],
      [ATTR.DATA, encodeTable(args)],
    ])
    return new Promise((resolve) => {
      this.pending.set(seq, { resolve })
      owner.write(encodeMessage(m))
    })
  }

  /** Bytes to the object's owner as they are (hostile ubusd). */
  sendRaw(b: Uint8Array): void {
    this.owner?.write(b)
  }

  private serve(c: net.Socket): void {
    const reader = new MessageReader()
    c.on('error', () => {})
    c.write(encodeMessage(msg(MSG.HELLO, 0, REAL_IDS.client, [])))
    c.on('data', (chunk) => {
      for (const m of reader.push(new Uint8Array(chunk))) {
        const raw = encodeMessage(m)
        this.received.push(raw)
        this.handle(c, m)
      }
    })
  }

  private handle(c: net.Socket, m: Message): void {
    if (m.type === MSG.ADD_OBJECT) {
      const sig = nested(m, ATTR.SIGNATURE)
      this.signature = sig ? decodeFields(sig).map((f) => [f.name, f.value as { [k: string]: JsonValue }]) : null
      this.owner = c
      c.write(
        encodeMessage(
          msg(MSG.DATA, m.seq, 0, [
            [ATTR.OBJID, REAL_IDS.object],
            [ATTR.OBJTYPE, REAL_IDS.objtype],
          ]),
        ),
      )
      c.write(encodeMessage(msg(MSG.STATUS, m.seq, 0, [[ATTR.STATUS, 0]])))
      this.emit('registered', str(m, ATTR.OBJPATH))
    } else if (m.type === MSG.INVOKE && num(m, ATTR.OBJID) === EVENT_OBJECT && str(m, ATTR.METHOD) === 'send') {
      const body = decodeTable(nested(m, ATTR.DATA) ?? new Uint8Array(0))
      this.events.push({ id: String(body.id), data: body.data ?? null })
      c.write(encodeMessage(msg(MSG.STATUS, m.seq, EVENT_OBJECT, [[ATTR.STATUS, 0]])))
      this.emit('event', body.id)
    } else if (m.type === MSG.DATA) {
      const p = this.pending.get(m.seq)
      if (p) p.data = decodeTable(nested(m, ATTR.DATA) ?? new Uint8Array(0))
    } else if (m.type === MSG.STATUS) {
      const p = this.pending.get(m.seq)
      if (!p) return
      this.pending.delete(m.seq)
      p.resolve({ status: num(m, ATTR.STATUS) ?? -1, data: p.data })
    }
  }
}
