/**
 * The errors this library throws, so that callers can branch on a class and a code:
 *
 *     CauseFlowError
 *      ├── CauseFlowAPIError          the service answered 4xx/5xx in its error shape
 *      ├── CauseFlowConnectionError   no answer: refused, reset, timed out, not HTTP or not JSON
 *      └── WebhookVerificationError   a webhook request is not a genuine, fresh delivery
 *
 * @module
 */

/** The error codes of docs/reference.md §8.8; the service may add codes, hence `string`. */
export type ErrorCode =
  | "bad_request"
  | "invalid_payload"
  | "unauthorized"
  | "invalid_token"
  | "token_expired"
  | "invalid_api_key"
  | "invalid_signature"
  | "signature_required"
  | "forbidden"
  | "not_found"
  | "unknown_provider"
  | "incident_not_found"
  | "remediation_not_found"
  | "approval_not_found"
  | "integration_not_found"
  | "trigger_not_found"
  | "subscription_not_found"
  | "delivery_not_found"
  | "method_not_allowed"
  | "invalid_transition"
  | "approval_expired"
  | "idempotency_key_in_flight"
  | "idempotency_key_unreadable"
  | "limit_reached"
  | "user_exists"
  | "trigger_exists"
  | "integration_disconnected"
  | "subscription_disabled"
  | "subscription_deleted"
  | "delivery_in_flight"
  | "cursor_expired"
  | "payload_too_large"
  | "validation_error"
  | "idempotency_key_reused"
  | "rate_limit_exceeded"
  | "too_many_streams"
  | "internal_error"
  | "service_unavailable"
  | (string & {});

/** One problem of a `validation_error` (`details.errors`). */
export interface FieldError {
  path: string;
  message: string;
}

/** The body of every 4xx and 5xx answer (docs/reference.md §8.7). */
export interface ApiErrorBody {
  error: ErrorCode;
  message: string;
  details?: { errors?: FieldError[]; [key: string]: unknown };
}

/** Base of every error this library throws. */
export class CauseFlowError extends Error {
  override name = "CauseFlowError";
}

/**
 * The service refused a request. `status` is the HTTP status, `code` the snake_case error code
 * to branch on, `details` the structured part when there is one (`details.errors` lists the
 * field paths of a validation error). `retryAfter` is the `Retry-After` header in seconds (429,
 * 503; an HTTP date is converted).
 */
export class CauseFlowAPIError extends CauseFlowError {
  override name = "CauseFlowAPIError";
  readonly status: number;
  readonly code: ErrorCode;
  readonly details: ApiErrorBody["details"];
  readonly retryAfter: number | undefined;
  readonly body: ApiErrorBody;
  readonly headers: Headers;

  constructor(status: number, body: ApiErrorBody, headers: Headers = new Headers()) {
    super(`${status} ${body.error}: ${body.message}`);
    this.status = status;
    this.code = body.error;
    this.details = body.details;
    this.body = body;
    this.headers = headers;
    this.retryAfter = retryAfterSeconds(headers.get("retry-after"));
  }

  /** `details.errors` of a validation error (empty otherwise). */
  get fieldErrors(): FieldError[] {
    return this.details?.errors ?? [];
  }
}

/** The request got no usable HTTP answer (connection refused or dropped, timeout, bad body). */
export class CauseFlowConnectionError extends CauseFlowError {
  override name = "CauseFlowConnectionError";

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Why a webhook request was refused; see `WebhookVerificationError.reason`. */
export type WebhookFailure =
  | "missing_signature"
  | "missing_header"
  | "invalid_timestamp"
  | "timestamp_out_of_tolerance"
  | "signature_mismatch"
  | "invalid_body";

/**
 * A webhook request failed verification: missing headers, a stale timestamp, a signature that
 * matches none of the secrets, or a body that is not an event. Answer it with 400 and do not
 * act on it.
 */
export class WebhookVerificationError extends CauseFlowError {
  override name = "WebhookVerificationError";
  readonly reason: WebhookFailure;

  constructor(reason: WebhookFailure, message: string) {
    super(message);
    this.reason = reason;
  }
}

function retryAfterSeconds(value: string | null): number | undefined {
  if (value === null) return undefined;
  const seconds = Number(value.trim());
  if (value.trim() !== "" && Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

/** The error for a non-2xx answer, from its JSON error body or, failing that, its text. */
export function apiError(status: number, text: string, headers: Headers): CauseFlowAPIError {
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (isErrorBody(parsed)) return new CauseFlowAPIError(status, parsed, headers);
  const message = text.trim().slice(0, 200) || "no error body";
  return new CauseFlowAPIError(status, { error: `http_${status}`, message }, headers);
}

function isErrorBody(value: unknown): value is ApiErrorBody {
  if (typeof value !== "object" || value === null) return false;
  const body = value as Record<string, unknown>;
  return typeof body.error === "string" && typeof body.message === "string";
}
