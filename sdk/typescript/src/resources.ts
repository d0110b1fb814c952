/**
 * The API's resources as groups of methods: incidents, events, webhook subscriptions and
 * deliveries (docs/reference.md §3, §5, §7).
 *
 * Each method is one request, except `list` methods, which return a `Paginator` that fetches
 * pages as a `for await` loop consumes them. Bodies and results use the wire's camelCase and
 * the generated types; every POST takes an `idempotencyKey`.
 *
 * @module
 */

import type { EventDataMap, EventName, Envelope } from "./generated/events.js";
import type { PostOptions, QueryValue, RequestOptions, Transport } from "./http.js";
import { type Page, Paginator } from "./pagination.js";
import type {
  BatchEvent,
  BatchItem,
  Delivery,
  DeliveryDetail,
  DeliverySearchParams,
  DeliveryWindow,
  EventListParams,
  Incident,
  IncidentCreate,
  IncidentDetail,
  IncidentListParams,
  IncidentUpdate,
  ScheduledCount,
  SecretRotate,
  SecretRotated,
  Subscription,
  SubscriptionCreate,
  SubscriptionCreated,
  SubscriptionDeliveryParams,
  SubscriptionListParams,
  SubscriptionStats,
  SubscriptionUpdate,
  TestDeliveryRequest,
} from "./types.js";

const id = encodeURIComponent;

abstract class Group {
  protected readonly t: Transport;

  constructor(transport: Transport) {
    this.t = transport;
  }

  protected paginate<T>(path: string, params: object, options: RequestOptions): Paginator<T> {
    const query = params as Record<string, QueryValue>;
    return new Paginator<T>((cursor) =>
      this.t.request<Page<T>>("GET", path, { ...options, query: { ...query, cursor } }),
    );
  }
}

/** `/v1/incidents`: open incidents by hand, move them, read them (§7). */
export class Incidents extends Group {
  /** Every incident matching the filters, newest first unless `sort: "createdAt"`. */
  list(params: IncidentListParams = {}, options: RequestOptions = {}): Paginator<Incident> {
    return this.paginate<Incident>("/v1/incidents", params, options);
  }

  /** The incident with its recent alerts and its events in log order. */
  get(incidentId: string, options: RequestOptions = {}): Promise<IncidentDetail> {
    return this.t.request("GET", `/v1/incidents/${id(incidentId)}`, options);
  }

  /** Open an incident by hand (emits `incident.created`). */
  create(body: IncidentCreate, options: PostOptions = {}): Promise<Incident> {
    return this.t.request("POST", "/v1/incidents", { ...options, body });
  }

  /** Move it to another status (409 `invalid_transition` when the lifecycle forbids it). */
  update(incidentId: string, body: IncidentUpdate, options: RequestOptions = {}): Promise<Incident> {
    return this.t.request("PATCH", `/v1/incidents/${id(incidentId)}`, { ...options, body });
  }
}

export interface PublishOptions extends PostOptions {
  /** Mark the event as a test: `"test": true` in its envelope, no side effects (§3.3). */
  test?: boolean;
}

/** `/v1/events`: the tenant's log in commit order, and publishing (§3). */
export class Events extends Group {
  /** The log from the filters on, oldest first; `after` is an event id (strictly after it). */
  list(params: EventListParams = {}, options: RequestOptions = {}): Paginator<Envelope> {
    return this.paginate<Envelope>("/v1/events", params, options);
  }

  /** Publish one event; resolves to the stored envelope. `data` is checked by the service. */
  publish<K extends EventName>(
    event: K,
    data: EventDataMap[K],
    options: PublishOptions = {},
  ): Promise<Envelope<K>> {
    const { test, ...rest } = options;
    const body = test ? { event, data, test: true } : { event, data };
    return this.t.request("POST", "/v1/events", { ...rest, body });
  }

  /**
   * Publish 1 to 100 events in one transaction, in order, all or none: a refused event
   * rejects with `CauseFlowAPIError` naming it (`events.<index>…`) and nothing is stored.
   * Resolves to the stored envelopes in the order given.
   */
  async publishBatch(events: readonly BatchEvent[], options: PostOptions = {}): Promise<Envelope[]> {
    const body = {
      events: events.map(({ event, data, test }) => (test ? { event, data, test: true } : { event, data })),
    };
    const answer = await this.t.request<{ items: BatchItem[] }>("POST", "/v1/events/batch", {
      ...options,
      body,
    });
    return answer.items.map((item) => item.event);
  }
}

/** `/v1/webhook-subscriptions`: where the service pushes events (§5.1). */
export class WebhookSubscriptions extends Group {
  private static readonly PATH = "/v1/webhook-subscriptions";

  private path(subscriptionId: string, action = ""): string {
    return `${WebhookSubscriptions.PATH}/${id(subscriptionId)}${action ? `/${action}` : ""}`;
  }

  /** Create one; the answer carries the signing secret, shown only here. */
  create(body: SubscriptionCreate, options: PostOptions = {}): Promise<SubscriptionCreated> {
    return this.t.request("POST", WebhookSubscriptions.PATH, { ...options, body });
  }

  /** Every subscription, oldest first. */
  list(params: SubscriptionListParams = {}, options: RequestOptions = {}): Paginator<Subscription> {
    return this.paginate<Subscription>(WebhookSubscriptions.PATH, params, options);
  }

  get(subscriptionId: string, options: RequestOptions = {}): Promise<Subscription> {
    return this.t.request("GET", this.path(subscriptionId), options);
  }

  /** Change the fields given; `null` clears description, filter, headers and the rate. */
  update(
    subscriptionId: string,
    body: SubscriptionUpdate,
    options: RequestOptions = {},
  ): Promise<Subscription> {
    return this.t.request("PATCH", this.path(subscriptionId), { ...options, body });
  }

  /** Delete it; its pending deliveries are cancelled. */
  async delete(subscriptionId: string, options: RequestOptions = {}): Promise<void> {
    await this.t.request("DELETE", this.path(subscriptionId), options);
  }

  /** A new secret (generated, or the one given); the old one keeps signing for a while. */
  rotateSecret(
    subscriptionId: string,
    body: SecretRotate = {},
    options: PostOptions = {},
  ): Promise<SecretRotated> {
    return this.t.request("POST", this.path(subscriptionId, "rotate-secret"), {
      ...options,
      body,
    });
  }

  /** Deliver a sample event (default `incident.created`) to this subscription only. */
  test(
    subscriptionId: string,
    body: TestDeliveryRequest = {},
    options: PostOptions = {},
  ): Promise<Delivery> {
    return this.t.request("POST", this.path(subscriptionId, "test"), { ...options, body });
  }

  /** The endpoint's health over the last hour and day (§5.1.2). */
  stats(subscriptionId: string, options: RequestOptions = {}): Promise<SubscriptionStats> {
    return this.t.request("GET", this.path(subscriptionId, "stats"), options);
  }

  /** Its deliveries, newest first. */
  deliveries(
    subscriptionId: string,
    params: SubscriptionDeliveryParams = {},
    options: RequestOptions = {},
  ): Paginator<Delivery> {
    return this.paginate<Delivery>(this.path(subscriptionId, "deliveries"), params, options);
  }

  /** Make every failed delivery of the window due again. */
  recover(
    subscriptionId: string,
    body: DeliveryWindow,
    options: PostOptions = {},
  ): Promise<ScheduledCount> {
    return this.t.request("POST", this.path(subscriptionId, "recover"), { ...options, body });
  }

  /** Deliver again every event of the window that the subscription matches now. */
  replay(
    subscriptionId: string,
    body: DeliveryWindow,
    options: PostOptions = {},
  ): Promise<ScheduledCount> {
    return this.t.request("POST", this.path(subscriptionId, "replay"), { ...options, body });
  }
}

/** `/v1/deliveries`: the tenant's deliveries across subscriptions (§5.1). */
export class Deliveries extends Group {
  /** Search deliveries by event, incident, subscription, status, type and window. */
  list(params: DeliverySearchParams = {}, options: RequestOptions = {}): Paginator<Delivery> {
    return this.paginate<Delivery>("/v1/deliveries", params, options);
  }

  /** One delivery with its attempts, oldest first. */
  get(deliveryId: string, options: RequestOptions = {}): Promise<DeliveryDetail> {
    return this.t.request("GET", `/v1/deliveries/${id(deliveryId)}`, options);
  }

  /** One more attempt now (409 `delivery_in_flight` while one is running). */
  retry(deliveryId: string, options: PostOptions = {}): Promise<Delivery> {
    return this.t.request("POST", `/v1/deliveries/${id(deliveryId)}/retry`, options);
  }
}
