import { describe, expect, it } from 'vitest';
import { parseChannelsSetting } from './config.js';

describe('SYMBIONT_KEY_CHANNELS', () => {
  it('reads channels and their subscribers', () => {
    expect(parseChannelsSetting(undefined)).toEqual([]);
    expect(parseChannelsSetting('ledger.full=svc.audit-ledger, svc.incident-response; soc.incidents=svc.incident-response')).toEqual([
      { channel: 'ledger.full', subscribers: ['svc.audit-ledger', 'svc.incident-response'], kinds: [] },
      { channel: 'soc.incidents', subscribers: ['svc.incident-response'], kinds: [] },
    ]);
  });

  it('reads analyst.* as every enrolled analyst', () => {
    expect(parseChannelsSetting('soc.incidents=svc.incident-response,analyst.admin,analyst.*')).toEqual([{ channel: 'soc.incidents', subscribers: ['svc.incident-response', 'analyst.admin'], kinds: ['analyst'] }]);
  });

  it.each([
    ['ledger.full', /is not <channel>=<subscriber>/],
    ['bad channel=svc.a', /is not <channel>=<subscriber>/],
    ['a=svc.x=y', /is not <channel>=<subscriber>/],
    ['a=svc.x,,svc.y', /'' is not a principal id/],
    ['a=svc.*', /'svc.\*' is not a principal id/],
    ['a=svc.x;a=svc.y', /named twice/],
  ])('refuses %s', (text, message) => {
    expect(() => parseChannelsSetting(text)).toThrow(message);
  });
});
