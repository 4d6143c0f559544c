// The routing engine: ordered rules, first match wins.
//
// A rule is a list of conditions and an action. Every condition the rule
// has must hold; a list condition holds when any of its values matches.
// `domain`, `domainSuffix` and `domainKeyword` are three separate conditions
// (so a rule with two of them needs both); a domain condition never holds
// without a host name, a dstCidr condition never without a destination
// address, a proto condition never without a sniffed protocol (the caller
// routes again once it knows more).
//
// How 10 000 rules stay cheap (compileRules → CompiledRules):
//
//  1. Each rule gets ONE primary condition, the most selective one it has,
//     in this order: domain, domainSuffix, dstCidr, domainKeyword, srcCidr,
//     dstPort, listener. The rule's index goes into that condition's index
//     only: a reversed-label suffix trie (domain, domainSuffix), a
//     path-compressed binary prefix tree per family (dstCidr, srcCidr), an
//     Aho–Corasick automaton (domainKeyword), a port Map plus a range list
//     (dstPort), a Map (listener). Rules without any of these (only `proto`,
//     or no condition at all: a catch-all) go to a short scan list.
//  2. A lookup asks each index for the lists of rules whose primary
//     condition holds for the query. Every list is sorted by rule index.
//  3. Each list is read in order and each candidate is verified against its
//     other conditions (small per-rule matchers: a few string compares,
//     masked integer compares, a port-range search). A list stops at the
//     first rule that verifies or at the best (smallest) index found so far,
//     so the answer is the smallest index whose conditions all hold: first
//     match wins, across all index types.
//
// Cost per lookup: one Map lookup per host label, one tree walk per address,
// one pass over the host for keywords, plus the candidates that fail
// verification (few in real rule sets). Query parsing writes into
// preallocated arrays and every rule's result object is built at compile
// time, so route() allocates only the host's label strings (and a lower-case
// copy when the host has capitals). Parsed addresses are cached by their
// text (AddressCache), and host handling prefers native string calls: on
// QuickJS a JS loop costs ~0.1-0.2 µs per character.

import { ConfigError, show } from '../errors.js'
import { checkAction, compileRule } from './compile.js'
import { CompiledRules } from './engine.js'
import type { RouteQuery, RouteResult, RuleAction, RuleSpec } from './types.js'

export type { CompiledRules, RuleStats } from './engine.js'
export { parseActionString, parseRuleJson, parseRulesJson } from './json.js'
export type { PortSpec, RouteQuery, RouteResult, RuleAction, RuleSpec } from './types.js'

const DEFAULT_ACTION: RuleAction = Object.freeze({ type: 'direct' })

/**
 * Compile rules (in order; first match wins) into indexed lookups. Throws
 * ConfigError naming the rule ("rules[3]"), the field and the bad value.
 * `basePath` is the config path of the array (default "rules").
 */
export function compileRules(
  specs: readonly RuleSpec[],
  defaultAction: RuleAction = DEFAULT_ACTION,
  basePath = 'rules',
): CompiledRules {
  if (!Array.isArray(specs)) throw new ConfigError(basePath, `must be an array of rules, not ${show(specs)}`, specs)
  const def = checkAction(defaultAction, 'default action')
  const actions = new Map<string, RuleAction>() // identical actions shared: less memory
  const compiled = specs.map((spec, i) => compileRule(spec, `${basePath}[${i}]`, i, actions))
  return new CompiledRules(compiled, def)
}

/** First matching rule's action, or the default (ruleIndex -1). Never throws for odd queries. */
export function route(c: CompiledRules, q: RouteQuery): RouteResult {
  return c.route(q)
}
