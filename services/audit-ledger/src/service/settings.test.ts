import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, loadLedgerSettings } from './settings.js';

describe('ledger settings', () => {
  it('defaults: full batches sealed to incident response, control batches to the policy service', () => {
    const settings = loadLedgerSettings({});
    expect(settings.republishTo).toBe('svc.incident-response');
    expect(settings.controlTo).toEqual(['svc.policy']);
    expect(settings).toMatchObject({ ...DEFAULT_SETTINGS, signerWorkers: settings.signerWorkers });
  });

  it('reads the control recipients as a comma-separated list of principal ids', () => {
    expect(loadLedgerSettings({ SYMBIONT_LEDGER_CONTROL_TO: 'svc.policy, svc.key-manager' }).controlTo).toEqual(['svc.policy', 'svc.key-manager']);
  });

  it.each([
    ['svc.policy,', "'' is not a principal id"],
    ['svc.policy,bob', "'bob' is not a principal id"],
    ['svc.policy,svc.policy', 'names a principal twice'],
  ])('refuses SYMBIONT_LEDGER_CONTROL_TO=%s', (value, message) => {
    expect(() => loadLedgerSettings({ SYMBIONT_LEDGER_CONTROL_TO: value })).toThrow(message);
  });

  it('names the variable and the value of a bad number', () => {
    expect(() => loadLedgerSettings({ SYMBIONT_LEDGER_IN_FLIGHT: '0' })).toThrow("SYMBIONT_LEDGER_IN_FLIGHT='0' is not an integer in [1, 100000]");
  });
});
