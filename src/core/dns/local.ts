// What the DNS listener answers itself, before any upstream is asked: a
// query it cannot serve (FORMERR, NOTIMP), a name the rules reject
// (NXDOMAIN, or the configured addresses), a static name, a cached answer.
// Everything else goes upstream. Runtime-free: the io side only moves bytes.

import type { CompiledRules } from '../rules/index.js'
import { route } from '../rules/index.js'
import type { DnsCache } from './cache.js'
import { STATIC_TTL, type StaticHosts, addressRecord } from './hosts.js'
import { isIPv4, isIPv6 } from '../ip.js'
import {
  CLASS_IN,
  type DnsMessage,
  type DnsRecord,
  FLAG,
  RCODE,
  TYPE,
  opcodeOf,
  optRecord,
  rcodeOf,
  replyTo,
} from './message.js'

/** The EDNS UDP payload size ugate announces (the DNS flag day 2020 value). */
const EDNS_UDP_SIZE = 1232

export interface LocalContext {
  rules: CompiledRules
  /** The DNS listener's name (rules may name it) and the asker's address. */
  listener: string
  srcIp: string
  hosts: StaticHosts
  cache: DnsCache
  /** Addresses a rejected name gets; none = NXDOMAIN. */
  rejectAddresses: readonly string[]
  nowMs: number
}

export type LocalSource = 'invalid' | 'reject' | 'static' | 'cache'

export type LocalDecision =
  | { kind: 'reply'; reply: DnsMessage; source: LocalSource; rule?: string }
  | { kind: 'forward'; rule?: string }
  /** A response (QR set) sent to the listener: not answered at all. */
  | { kind: 'drop' }

/** The rule's name for log lines: its name, "#index", or "default". */
function ruleLabel(r: { ruleIndex: number; ruleName?: string }): string {
  return r.ruleIndex < 0 ? 'default' : (r.ruleName ?? `#${r.ruleIndex}`)
}

/** Decide how to answer query `q`. */
export function answerLocally(q: DnsMessage, c: LocalContext): LocalDecision {
  if (q.flags & FLAG.QR) return { kind: 'drop' }
  if (opcodeOf(q) !== 0) return local(q, replyTo(q, RCODE.NOTIMP), 'invalid')
  const question = q.questions[0]
  if (q.questions.length !== 1 || question === undefined) return local(q, replyTo(q, RCODE.FORMERR), 'invalid')

  // The name is the destination; port 53 and the listener let rules single DNS out.
  const r = route(c.rules, { host: question.name, dstPort: 53, srcIp: c.srcIp, listener: c.listener })
  const rule = ruleLabel(r)
  if (r.action.type === 'reject') {
    const reply = replyTo(q, c.rejectAddresses.length === 0 ? RCODE.NXDOMAIN : RCODE.NOERROR)
    if (question.class === CLASS_IN && (question.type === TYPE.A || question.type === TYPE.AAAA)) {
      const fits = question.type === TYPE.A ? isIPv4 : isIPv6
      reply.answers = c.rejectAddresses
        .filter((a) => fits(a))
        .map((a) => addressRecord(question.name, question.type, a, STATIC_TTL))
    }
    return local(q, reply, 'reject', rule)
  }
  const fixed = c.hosts.answer(question)
  if (fixed !== undefined) {
    const reply = replyTo(q, RCODE.NOERROR)
    reply.flags |= FLAG.AA
    reply.answers = fixed
    return local(q, reply, 'static', rule)
  }
  const hit = c.cache.lookup(question, c.nowMs)
  if (hit !== undefined) {
    const reply = replyTo(q, hit.rcode)
    reply.answers = hit.answers
    reply.authority = hit.authority
    return local(q, reply, 'cache', rule)
  }
  return { kind: 'forward', rule }
}

function local(q: DnsMessage, reply: DnsMessage, source: LocalSource, rule?: string): LocalDecision {
  const out: LocalDecision = { kind: 'reply', reply: withOpt(q, reply), source }
  if (rule !== undefined) out.rule = rule
  return out
}

/** An OPT record in the reply exactly when the query had one (RFC 6891 §6.1.1). */
function withOpt(q: DnsMessage, reply: DnsMessage): DnsMessage {
  const additional = reply.additional.filter((r) => r.type !== TYPE.OPT)
  if (optRecord(q) !== undefined) {
    const opt: DnsRecord = {
      name: '',
      type: TYPE.OPT,
      class: EDNS_UDP_SIZE,
      ttl: 0,
      data: { kind: 'raw', bytes: new Uint8Array(0) },
    }
    additional.push(opt)
  }
  return { ...reply, additional }
}

/** The upstream's reply as the client's: its id, its question's spelling, OPT as the client asked. */
export function clientReply(q: DnsMessage, upstream: DnsMessage): DnsMessage {
  // A forwarder's answer is not authoritative, and it does recurse.
  const flags = (upstream.flags & ~FLAG.AA) | FLAG.RA
  return withOpt(q, { ...upstream, id: q.id, flags, questions: q.questions.slice() })
}

/** SERVFAIL for `q` (every upstream failed). */
export function servfail(q: DnsMessage): DnsMessage {
  return withOpt(q, replyTo(q, RCODE.SERVFAIL))
}

/** Whether `reply` answers `q`: same id, same question (names compared case-blind). */
export function answersQuery(q: DnsMessage, reply: DnsMessage): boolean {
  const a = q.questions[0]
  const b = reply.questions[0]
  if (!(reply.flags & FLAG.QR) || reply.id !== q.id) return false
  // Some servers leave the question out of a FORMERR/SERVFAIL: accept those.
  if (b === undefined) return rcodeOf(reply) !== RCODE.NOERROR
  return a !== undefined && a.type === b.type && a.class === b.class && a.name.toLowerCase() === b.name.toLowerCase()
}
