// Reading /metrics in the tests: one sample's value, and Debian's
// `promtool check metrics` (format and lint) on the text.

import { spawnSync } from 'node:child_process'
import type { AssertLike } from './ugate.js'

/** The value of the sample line `name{labels}` in exposition text, or undefined. */
export function sample(text: string, line: string): number | undefined {
  const l = text.split('\n').find((x) => x.startsWith(`${line} `))
  return l === undefined ? undefined : Number(l.slice(line.length + 1))
}

/** `promtool check metrics` accepts the text without a lint finding. */
export function checkMetrics(t: AssertLike, text: string, what = ''): void {
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  const of = what === '' ? '' : ` (${what})`
  t.equal(check.status, 0, `promtool check metrics${of}`, { stdout: check.stdout, stderr: check.stderr })
  t.equal(check.stdout + check.stderr, '', `no lint findings${of}`)
}
