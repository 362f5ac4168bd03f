"""The GraphQL schema by entity: each module holds one entity's types, queries and mutations.

root.py assembles the Query, Mutation and Subscription roots from them; record.py is the
schema of record (`from graph.schema.record import schema`).
"""
