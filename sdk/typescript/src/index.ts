/**
 * @causeflow/sdk: the CauseFlow API, its event stream and webhook verification for Node.js 18+
 * and browsers, on `fetch` and Web Crypto alone (no runtime dependencies).
 *
 * @module
 */

export { CauseFlowClient } from "./client.js";
export {
  type ApiErrorBody,
  CauseFlowAPIError,
  CauseFlowConnectionError,
  CauseFlowError,
  type ErrorCode,
  type FieldError,
  type WebhookFailure,
  WebhookVerificationError,
} from "./errors.js";
export type { ClientOptions, FetchLike, PostOptions, RequestOptions } from "./http.js";
export { type Page, type PageFetcher, Paginator } from "./pagination.js";
export {
  Deliveries,
  Events,
  Incidents,
  type PublishOptions,
  WebhookSubscriptions,
} from "./resources.js";
export { type Backoff, type SseFrame, SseParser, reconnectDelay } from "./sse.js";
export {
  DEFAULT_IDLE_TIMEOUT_MS,
  EventStream,
  type RawEvent,
  type StreamOptions,
  StreamReset,
  type TicketSource,
} from "./stream.js";
export {
  DEFAULT_TOLERANCE_SECONDS,
  type RawBody,
  SECRET_PREFIX,
  type SignOptions,
  type SignatureScheme,
  type VerifyOptions,
  type WebhookHeaders,
  signWebhook,
  standardKey,
  verifyWebhook,
  verifyWebhookSignature,
} from "./webhooks.js";
export * from "./generated/events.js";
export type { components, operations, paths } from "./generated/api.js";
export type * from "./types.js";
