package io.shardmap.query;

import java.util.List;

/**
 * One cross-shard SELECT, parsed, checked and rewritten (immutable, thread-safe, reusable with other
 * parameters): what each shard runs and how their rows merge into the answer that the same SELECT gives on
 * one database holding every row. From {@link QueryPlanner#plan}.
 */
public interface QueryPlan {
  /** The statement as the caller wrote it. */
  String sql();

  /** The sharded table whose key column decides which rows each shard contributes (lower case, unquoted). */
  String table();

  /**
   * SQL naming that key column inside the shard statement's WHERE clause ({@code "o"."user_id"}, or the
   * table name when the statement uses no alias), for the ownership predicate the caller builds (the rows
   * of {@link #table} that the shard owns at the map revision the query runs at).
   */
  String keyRef();

  /** How many {@code ?} placeholders the statement has. */
  int parameterCount();

  /** The answer's column labels, as PostgreSQL labels them for the statement. */
  List<String> columnLabels();

  /**
   * The statement a shard runs: the caller's, with {@code predicate} (literal SQL over {@link #keyRef}, with
   * no placeholders) ANDed into its WHERE, and the rewrites the merge needs (partial aggregates, hidden sort
   * columns, a per-shard LIMIT of offset + limit, no OFFSET and no HAVING). Refuses (INVALID_ARGUMENT,
   * field {@code params}) a parameter list of the wrong length or with a LIMIT/OFFSET value that is not a
   * non-negative integer.
   */
  ShardStatement shardStatement(String predicate, List<Object> params);

  /**
   * Merges the shards' rows (each in the order its {@link #shardStatement} returns them) into the answer.
   * The result streams: it holds at most one row per shard plus what {@link MergeOptions#maxInMemoryRows}
   * allows, whatever the OFFSET. Closing it closes every shard source.
   */
  RowSource merge(List<RowSource> shards, List<Object> params, MergeOptions options);

  /** For logs and operators: the shard statement (predicate shown as {@code <owned>}) and the merge steps. */
  String explain();
}
