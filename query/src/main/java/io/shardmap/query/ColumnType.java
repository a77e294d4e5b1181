package io.shardmap.query;

/**
 * What the merge must know of one column of the shards' rows to compare values the way PostgreSQL does.
 *
 * @param pgType the column's type name as PostgreSQL's catalog spells it ({@code int4}, {@code numeric},
 *     {@code text}, {@code varchar}, {@code timestamptz}, ...; {@code ResultSetMetaData.getColumnTypeName})
 * @param collation the effective collation of a collatable column, null for other types; see
 *     {@link Collation}
 */
public record ColumnType(String pgType, Collation collation) {
  /**
   * A collation as PostgreSQL resolved it for the column's expression ({@code pg_collation_for}, with
   * {@code "default"} replaced by the database's own).
   *
   * @param name the collation's name ({@code C}, {@code POSIX}, {@code C.utf8}, {@code en-x-icu}, ...)
   * @param provider {@code c} (libc), {@code i} (ICU) or {@code d} for the database default's provider
   *     already resolved to one of those two; as {@code pg_collation.collprovider}
   * @param locale the libc {@code collcollate} or the ICU locale ({@code collcollate}/{@code colliculocale}
   *     or {@code daticulocale})
   * @param deterministic false for a nondeterministic ICU collation (equality is not byte equality)
   */
  public record Collation(String name, char provider, String locale, boolean deterministic) {}
}
