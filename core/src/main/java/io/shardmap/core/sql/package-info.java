/**
 * Key-selecting SQL as text, with no database: how a key column's values map to canonical keys ({@link
 * io.shardmap.core.sql.KeyKind}), Shardmap's routing functions in SQL ({@link io.shardmap.core.sql.SqlRouting};
 * the migrator installs them), and the conditions built from both ({@link io.shardmap.core.sql.KeySql}) that
 * the migrator's move units and each strategy's ownership predicate use.
 */
package io.shardmap.core.sql;
