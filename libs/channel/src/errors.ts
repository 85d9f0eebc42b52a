import { BulwarkError } from '@bulwark/errors';

export type ChannelErrorCode =
  /** A wrap that does not open: tampered, for another recipient, channel or epoch, or not from the issuer. */
  | 'E_CHANNEL_WRAP'
  /** An epoch announcement that is malformed or does not follow the channel's last one. */
  | 'E_CHANNEL_ANNOUNCEMENT'
  /** An announcement that did not come from the key manager. */
  | 'E_CHANNEL_ISSUER'
  /** A change the channel's state does not allow (an unknown subscriber, a second create, ...). */
  | 'E_CHANNEL_STATE';

export class ChannelError extends BulwarkError {
  declare readonly code: ChannelErrorCode;

  constructor(code: ChannelErrorCode, message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(code, message, context, options);
  }
}
