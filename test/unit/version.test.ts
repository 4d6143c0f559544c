import t from 'tap'
import { VERSION } from '../../src/core/version.js'

t.equal(VERSION, 'dev', 'unbundled builds have no version defined')
