"""The emulator's GraphQL API: the schema (SDL), its resolvers over the organisation, and webhooks."""
