/**
 * Names for the generated types the client's methods take and return.
 *
 * Every shape comes from `generated/api.ts` (the OpenAPI document) or `generated/events.ts`
 * (the event catalog); this module only names them, and widens query parameters that the
 * service reads as comma-separated lists or RFC 3339 times so that arrays and Dates pass too.
 *
 * @module
 */

import type { components, paths } from "./generated/api.js";
import type { Envelope, EventDataMap, EventName } from "./generated/events.js";

type Schemas = components["schemas"];

/** The query parameters of `GET path`, as the OpenAPI document lists them. */
type QueryOf<P extends keyof paths> = paths[P] extends { get: { parameters: { query?: infer Q } } }
  ? NonNullable<Q>
  : never;

/** `Lists` may be arrays (joined with commas), `Times` Dates (sent as RFC 3339); no cursor. */
type Params<Q, Lists extends string = never, Times extends string = never> = {
  [K in Exclude<keyof Q, "cursor">]?: K extends Lists
    ? Q[K] | readonly string[]
    : K extends Times
      ? Q[K] | Date
      : Q[K];
};

export type Incident = Schemas["IncidentRead"];
/** An incident with its recent alerts and its events (envelopes, in log order). */
export type IncidentDetail = Omit<Schemas["IncidentDetail"], "events"> & { events: Envelope[] };
export type IncidentCreate = Schemas["IncidentCreate"];
export type IncidentUpdate = Schemas["IncidentUpdate"];
export type IncidentListParams = Params<QueryOf<"/v1/incidents">, "status" | "severity">;
export type Alert = Schemas["AlertRead"];

export type EventPublish = Schemas["EventPublish"];
/** The body of `POST /v1/events/batch` as the OpenAPI document has it. */
export type EventBatch = Schemas["EventBatch"];
/** One event of `events.publishBatch`: a catalog type with its own data shape. */
export type BatchEvent<K extends EventName = EventName> = K extends EventName
  ? { event: K; data: EventDataMap[K]; test?: boolean }
  : never;
/** One result of `POST /v1/events/batch` (every status is 201: a batch is stored whole). */
export interface BatchItem {
  index: number;
  status: number;
  event: Envelope;
}
export type EventListParams = Params<QueryOf<"/v1/events">, "event", "since">;

export type Subscription = Schemas["SubscriptionRead"];
/** A new subscription with its signing secret, shown only in this answer. */
export type SubscriptionCreated = Schemas["SubscriptionCreated"];
export type SubscriptionCreate = Schemas["SubscriptionCreate"];
export type SubscriptionUpdate = Schemas["SubscriptionUpdate"];
export type SubscriptionStats = Schemas["SubscriptionStats"];
export type SecretRotate = Schemas["SecretRotate"];
/** A rotated subscription: the new `secret` and when the old one stops signing. */
export type SecretRotated = Schemas["SecretRotated"];
export type TestDeliveryRequest = Schemas["TestDeliveryRequest"];
export type DeliveryWindow = Schemas["DeliveryWindow"];
export type ScheduledCount = Schemas["ScheduledCount"];
export type SubscriptionListParams = Params<QueryOf<"/v1/webhook-subscriptions">>;
export type SubscriptionDeliveryParams = Params<
  QueryOf<"/v1/webhook-subscriptions/{subscription_id}/deliveries">,
  "event"
>;

export type Delivery = Schemas["DeliveryRead"];
/** A delivery with `attemptLog`, its attempts oldest first. */
export type DeliveryDetail = Schemas["DeliveryDetail"];
export type Attempt = Schemas["AttemptRead"];
export type DeliverySearchParams = Params<QueryOf<"/v1/deliveries">, "event", "since" | "until">;

/** A `?token=` credential for the stream (docs/reference.md §4.1). */
export type StreamTicket = Schemas["StreamTicket"];
