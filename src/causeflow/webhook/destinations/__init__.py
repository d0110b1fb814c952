"""Destinations beyond HTTP webhooks: message brokers a subscription publishes its deliveries to.

`base` is the interface every broker type implements (`Target`, `Publisher`, `BrokerError`);
`options` holds each type's settings as pydantic models (pure, no broker client); `registry`
names the types and imports a type's module only when a subscription of that type is delivered
to, so the broker clients stay optional extras; `pool` keeps one publisher per destination
and `deliverer` routes an attempt to the HTTP sender or to a broker.
"""
