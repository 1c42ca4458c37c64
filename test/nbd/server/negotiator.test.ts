/**
 * The option-haggling state machine against a model: random sequences of decoded options (valid,
 * unknown, invalid, oversized) get exactly the replies the spec's rules give, in NOTLS and
 * FORCEDTLS modes, and the session handed to transmission carries the negotiated state.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../../src/drivers/memory.js';
import { Opt, Rep, type NbdOption } from '../../../src/nbd/protocol/index.js';
import { ExportRegistry } from '../../../src/nbd/server/export-registry.js';
import { Negotiator, type NegotiationStep } from '../../../src/nbd/server/negotiation.js';
import { resolveOptions } from '../../../src/nbd/server/options.js';

const NAMES = ['', 'a', 'missing'];
const name = fc.constantFrom(...NAMES);
const queries = fc.array(fc.constantFrom('base:allocation', 'base:', 'qemu:dirty-bitmap:x', 'x-y:z'), { maxLength: 3 });

const optionArb: fc.Arbitrary<NbdOption> = fc.oneof(
  name.map((n) => ({ kind: 'exportName' as const, code: Opt.EXPORT_NAME, name: n })),
  fc.constantFrom(
    { kind: 'abort' as const, code: Opt.ABORT },
    { kind: 'list' as const, code: Opt.LIST },
    { kind: 'startTls' as const, code: Opt.STARTTLS },
    { kind: 'structuredReply' as const, code: Opt.STRUCTURED_REPLY },
    { kind: 'extendedHeaders' as const, code: Opt.EXTENDED_HEADERS },
  ),
  fc.tuple(fc.constantFrom('info' as const, 'go' as const), name, fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 4 })).map(([kind, n, infoRequests]) => ({
    kind,
    code: kind === 'go' ? Opt.GO : Opt.INFO,
    name: n,
    infoRequests,
  })),
  fc.tuple(fc.constantFrom('listMetaContext' as const, 'setMetaContext' as const), name, queries).map(([kind, exportName, q]) => ({
    kind,
    code: kind === 'setMetaContext' ? Opt.SET_META_CONTEXT : Opt.LIST_META_CONTEXT,
    exportName,
    queries: q,
  })),
  fc.integer({ min: 12, max: 1000 }).map((code) => ({ kind: 'unknown' as const, code, length: 3 })),
  fc.constantFrom(Opt.EXPORT_NAME, Opt.GO, Opt.LIST).map((code) => ({ kind: 'invalid' as const, code, reason: 'bad' })),
  fc.constantFrom(Opt.EXPORT_NAME, Opt.INFO).map((code) => ({ kind: 'tooBig' as const, code, length: 99999 })),
) as fc.Arbitrary<NbdOption>;

interface Sent {
  option: number;
  type: number;
}

function decode(buffers: Buffer[]): Sent[] {
  return buffers.map((b) => ({ option: b.readUInt32BE(8), type: b.readUInt32BE(12) }));
}

function setup(tls: { required: boolean } | undefined) {
  const registry = new ExportRegistry();
  registry.add('', new MemoryDriver({ size: 4096 }));
  registry.add('a', new MemoryDriver({ size: 8192 }), { description: 'A' });
  const sent: Buffer[] = [];
  const negotiator = new Negotiator({ registry, options: resolveOptions({}), tls, isClosing: () => false, send: (b) => sent.push(b) });
  return { negotiator, sent };
}

describe('Negotiator', () => {
  it('answers every option as the spec rules say (NOTLS)', () => {
    fc.assert(
      fc.property(fc.array(optionArb, { maxLength: 25 }), (options) => {
        const { negotiator, sent } = setup(undefined);
        const model = { structured: false, extended: false, alloc: undefined as string | undefined };
        for (const o of options) {
          sent.length = 0;
          const step = negotiator.handle(o);
          const replies = decode(sent);
          const exists = (n: string) => n === '' || n === 'a';
          const final = (type: number): void => {
            expect(replies.at(-1)).toEqual({ option: o.code, type });
            for (const r of replies) expect(r.option).toBe(o.code);
          };
          switch (o.kind) {
            case 'exportName':
              // Extended headers cannot be used over EXPORT_NAME: disconnect, sending nothing.
              if (model.extended) {
                expect(step).toMatchObject({ kind: 'disconnect' });
                expect(sent).toEqual([]);
                return;
              }
              if (exists(o.name)) {
                expect(step.kind).toBe('transmission');
                expect(sent).toHaveLength(1);
                // clientFlags() was never given NO_ZEROES: size, flags and the 124 zero bytes.
                expect(sent[0].length).toBe(134);
                return;
              }
              expect(step).toMatchObject({ kind: 'disconnect' });
              return;
            case 'abort':
              final(Rep.ACK);
              expect(step.kind).toBe('abort');
              return;
            case 'list':
              final(Rep.ACK);
              expect(replies.filter((r) => r.type === Rep.SERVER)).toHaveLength(2);
              break;
            case 'startTls':
              final(Rep.ERR_POLICY);
              break;
            case 'info':
            case 'go':
              if (!exists(o.name)) {
                final(Rep.ERR_UNKNOWN);
                expect(replies).toHaveLength(1);
                break;
              }
              final(Rep.ACK);
              expect(replies[0].type).toBe(Rep.INFO);
              if (o.kind === 'go') {
                expect(step.kind).toBe('transmission');
                if (step.kind === 'transmission') {
                  expect(step.session.structured).toBe(model.structured);
                  expect(step.session.extended).toBe(model.extended);
                  expect(step.session.allocationContext !== undefined).toBe(model.alloc === o.name);
                }
                return;
              }
              break;
            case 'structuredReply':
              if (model.extended) final(Rep.ERR_EXT_HEADER_REQD);
              else if (model.structured) final(Rep.ERR_INVALID);
              else {
                final(Rep.ACK);
                model.structured = true;
              }
              break;
            case 'extendedHeaders':
              if (model.extended) final(Rep.ERR_INVALID);
              else {
                final(Rep.ACK);
                model.extended = model.structured = true;
              }
              break;
            case 'setMetaContext':
              model.alloc = undefined;
              if (!model.structured) final(Rep.ERR_INVALID);
              else if (!exists(o.exportName)) final(Rep.ERR_UNKNOWN);
              else {
                final(Rep.ACK);
                const selected = o.queries.includes('base:allocation');
                expect(replies.filter((r) => r.type === Rep.META_CONTEXT)).toHaveLength(selected ? 1 : 0);
                if (selected) model.alloc = o.exportName;
              }
              break;
            case 'listMetaContext':
              if (!exists(o.exportName)) final(Rep.ERR_UNKNOWN);
              else {
                final(Rep.ACK);
                const listed = o.queries.length === 0 || o.queries.includes('base:') || o.queries.includes('base:allocation');
                expect(replies.filter((r) => r.type === Rep.META_CONTEXT)).toHaveLength(listed ? 1 : 0);
              }
              break;
            case 'unknown':
              final(Rep.ERR_UNSUP);
              break;
            case 'invalid':
            case 'tooBig':
              if (o.code === Opt.EXPORT_NAME) {
                expect(step.kind).toBe('disconnect');
                return;
              }
              final(o.kind === 'invalid' ? Rep.ERR_INVALID : Rep.ERR_TOO_BIG);
              break;
          }
          expect(step.kind).toBe('continue');
        }
      }),
      { numRuns: 500 },
    );
  });

  it('in FORCEDTLS mode answers only STARTTLS and ABORT before TLS, and forgets everything after it', () => {
    fc.assert(
      fc.property(fc.array(optionArb, { maxLength: 10 }), fc.array(optionArb, { maxLength: 10 }), (before, after) => {
        const { negotiator, sent } = setup({ required: true });
        for (const o of before) {
          sent.length = 0;
          const step: NegotiationStep = negotiator.handle(o);
          // EXPORT_NAME has no error reply, also when it could not be decoded (invalid, too big).
          if (o.code === Opt.EXPORT_NAME) {
            expect(step.kind).toBe('disconnect');
            expect(sent).toEqual([]);
            return;
          }
          if (o.kind === 'abort') {
            expect(step.kind).toBe('abort');
            return;
          }
          if (o.kind === 'startTls') {
            expect(step.kind).toBe('startTls');
            expect(decode(sent)).toEqual([{ option: Opt.STARTTLS, type: Rep.ACK }]);
            break;
          }
          expect(decode(sent)).toEqual([{ option: o.code, type: Rep.ERR_TLS_REQD }]);
        }
        negotiator.tlsStarted();
        expect(negotiator.state).toEqual({ structuredReplies: false, extendedHeaders: false, tls: true });
        for (const o of after) {
          sent.length = 0;
          const step = negotiator.handle(o);
          // Never TLS_REQD once TLS runs; a second STARTTLS is invalid.
          for (const r of decode(sent)) expect(r.type).not.toBe(Rep.ERR_TLS_REQD);
          if (o.kind === 'startTls') expect(decode(sent)).toEqual([{ option: Opt.STARTTLS, type: Rep.ERR_INVALID }]);
          if (step.kind !== 'continue') return;
        }
      }),
      { numRuns: 300 },
    );
  });
});
