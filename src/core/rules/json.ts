// The JSON form of rules in the config: action strings ("upstream:vpn")
// and rule objects, checked completely so `ugate check` names every problem.

import { ConfigError, show } from '../errors.js'
import { NAME, RULE_FIELDS, checkAction, compileRule, forwardTarget } from './compile.js'
import type { RuleAction, RuleSpec } from './types.js'

/**
 * Parse an action string: "direct", "reject", "mesh", "upstream:NAME",
 * "forward:HOST:PORT" (IPv6 hosts in brackets: "forward:[2001:db8::1]:443").
 */
export function parseActionString(text: unknown, path: string): RuleAction {
  const fail = (why: string): never => {
    throw new ConfigError(path, `${show(text)} is not an action (${why})`, text)
  }
  if (typeof text !== 'string') return fail('"direct", "reject", "mesh", "upstream:NAME" or "forward:HOST:PORT"')
  if (text === 'direct' || text === 'reject' || text === 'mesh') return Object.freeze({ type: text })
  if (text.startsWith('upstream:')) {
    const name = text.slice('upstream:'.length)
    if (!NAME.test(name)) fail('upstream NAME is 1-64 of A-Z a-z 0-9 _ . -')
    return Object.freeze({ type: 'upstream', name })
  }
  if (text.startsWith('forward:')) {
    const hp = forwardTarget(text.slice('forward:'.length))
    if (typeof hp === 'string') return fail(hp)
    return checkAction({ type: 'forward', host: hp[0], port: hp[1] }, path)
  }
  return fail('"direct", "reject", "mesh", "upstream:NAME" or "forward:HOST:PORT"')
}

/**
 * Map one rule of the config's JSON `rules` array onto a RuleSpec and check
 * it completely (values too), so `ugate check` reports every problem with its
 * path: `{"domainSuffix": ["example.com"], "dstPort": [443, "8000-8080"],
 * "action": "upstream:vpn"}`. `path` is the rule's path ("rules[3]").
 */
export function parseRuleJson(obj: unknown, path: string): RuleSpec {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new ConfigError(path, `must be a rule object, not ${show(obj)}`, obj)
  }
  const o = obj as Record<string, unknown>
  for (const key of Object.keys(o)) {
    if (!(RULE_FIELDS as readonly string[]).includes(key)) {
      throw new ConfigError(path, `unknown field ${show(key)} (known: ${RULE_FIELDS.join(', ')})`, key)
    }
  }
  if (o.action === undefined) throw new ConfigError(`${path}.action`, 'is missing', undefined)
  const spec = { ...o, action: parseActionString(o.action, `${path}.action`) } as RuleSpec
  compileRule(spec, path, -1) // every value checked, errors named by path
  return spec
}

/** The config's whole `rules` array (see parseRuleJson). */
export function parseRulesJson(arr: unknown, path = 'rules'): RuleSpec[] {
  if (!Array.isArray(arr)) throw new ConfigError(path, `must be an array of rules, not ${show(arr)}`, arr)
  return arr.map((r, i) => parseRuleJson(r, `${path}[${i}]`))
}
