/**
 * Shardmap's SQL. Key-selecting SQL as text, with no database: how a key column's values map to canonical keys ({@link
 * io.shardmap.core.sql.KeyKind}), Shardmap's routing functions in SQL ({@link io.shardmap.core.sql.SqlRouting};
 * the migrator installs them), and the conditions built from both ({@link io.shardmap.core.sql.KeySql}) that
 * the migrator's move units and each strategy's ownership predicate use. And the participant side of a
 * cross-shard transaction on one shard over plain JDBC ({@link io.shardmap.core.sql.PreparedTransactions}:
 * prepare, commit or roll back prepared, list this cluster's prepared transactions), which the SDK's
 * coordinator and the resolver share; the decision carried by one participant ({@link
 * io.shardmap.core.sql.DecisionRows}); the scan of a cluster's in-doubt transactions across its shards that the
 * resolver acts on and {@code shardmapctl txn list} prints ({@link io.shardmap.core.sql.InDoubt}); and how
 * Shardmap's tools address a shard over JDBC ({@link io.shardmap.core.sql.ShardJdbc}).
 */
package io.shardmap.core.sql;
