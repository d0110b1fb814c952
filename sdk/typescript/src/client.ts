/**
 * `CauseFlowClient`: the CauseFlow API from Node.js 18+ or a browser, over `fetch`.
 *
 *     const cf = new CauseFlowClient({ baseUrl: "https://causeflow.example.com", apiKey });
 *     for await (const incident of cf.incidents.list({ status: ["open", "triaging"] })) { … }
 *     const sub = await cf.webhookSubscriptions.create({ url, events: ["incident.*"] });
 *     for await (const item of cf.stream({ events: ["incident.created"] })) { … }
 *
 * Credentials: an API key (`X-API-Key`), a JWT (`Authorization: Bearer`), or none (a browser
 * page on the service's own origin, whose session cookie the stream accepts, or a stream that
 * is given a ticket).
 *
 * @module
 */

import { type ClientOptions, type PostOptions, Transport } from "./http.js";
import { Deliveries, Events, Incidents, WebhookSubscriptions } from "./resources.js";
import { EventStream, type StreamOptions } from "./stream.js";
import type { StreamTicket } from "./types.js";

/** One client per service and credential; reuse it. */
export class CauseFlowClient {
  readonly incidents: Incidents;
  readonly events: Events;
  readonly webhookSubscriptions: WebhookSubscriptions;
  readonly deliveries: Deliveries;
  private readonly transport: Transport;

  constructor(options: ClientOptions) {
    this.transport = new Transport(options);
    this.incidents = new Incidents(this.transport);
    this.events = new Events(this.transport);
    this.webhookSubscriptions = new WebhookSubscriptions(this.transport);
    this.deliveries = new Deliveries(this.transport);
  }

  get baseUrl(): string {
    return this.transport.baseUrl;
  }

  /**
   * The notification stream: `for await (const item of cf.stream(...))`. Items are envelopes,
   * or a `StreamReset` when the service could not resume from the last event (refetch state
   * then). Drops are resumed with `Last-Event-ID`; see `EventStream`.
   */
  stream(options: StreamOptions = {}): EventStream {
    return new EventStream(this.transport, options);
  }

  /**
   * A short-lived `?token=` credential for the stream only, reusable for reconnects until it
   * expires (docs/reference.md §4.1): a backend mints it with its key and hands it to a browser.
   */
  createStreamTicket(options: PostOptions = {}): Promise<StreamTicket> {
    return this.transport.request("POST", "/v1/notifications/stream-tickets", options);
  }
}
