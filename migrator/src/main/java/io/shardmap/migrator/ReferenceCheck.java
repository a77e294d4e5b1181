package io.shardmap.migrator;

import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.Map;

/**
 * What comparing every copy of a reference table found ({@link Migrator#verifyReference}), read at one
 * consistent point: while it read, no coordinated write of the table was in flight on any copy
 * (docs/reference-verify.md).
 *
 * <p>Copies are compared row by row by primary key. For each key, the <em>majority</em> version is the one
 * (a row with a given content, or no row) held by more than half of the copies; a copy <em>differs</em> at a
 * key when it holds another version. A key no version of which has a strict majority is {@link #unresolved}.
 *
 * @param table the canonical table name ({@code public.countries})
 * @param copies every copy, by shard name order
 * @param equal whether every copy has the same rows (same count and checksum)
 * @param differences the keys at which a copy differs from the majority, at most the listing bound per copy
 *     (the counts in {@link Copy} are exact), by shard then key
 * @param unresolved the keys without a majority version, at most the listing bound
 * @param unresolvedKeys how many keys have no majority version (exact)
 * @param buckets the number of primary-key hash buckets the rows were narrowed down by
 * @param bucketsDiffering buckets whose summaries differed between copies (0 when equal)
 * @param rowsCompared rows read row by row (those of the differing buckets, over all copies)
 */
public record ReferenceCheck(String table, List<Copy> copies, boolean equal, List<KeyDiff> differences,
    List<Unresolved> unresolved, long unresolvedKeys, int buckets, long bucketsDiffering, long rowsCompared) {

  public ReferenceCheck {
    copies = List.copyOf(copies);
    differences = List.copyOf(differences);
    unresolved = List.copyOf(unresolved);
  }

  /**
   * One copy.
   *
   * @param shard the shard holding it
   * @param epoch its reference epoch (the version of the set of copies it was guarded under)
   * @param rows its row count
   * @param checksum the sum of a 64-bit hash of every row's text (columns in name order), as a decimal
   * @param missing keys the majority has and this copy lacks
   * @param extra keys this copy has and the majority lacks
   * @param changed keys both have with different contents
   */
  public record Copy(String shard, long epoch, long rows, String checksum, long missing, long extra, long changed) {
    /** Keys at which this copy differs from the majority. */
    public long differing() {
      return missing + extra + changed;
    }
  }

  /** How a copy differs from the majority (or from the named source, in a repair) at one key. */
  public enum Kind {
    /** The copy lacks a row the majority has: a repair inserts it. */
    MISSING,
    /** The copy has a row the majority lacks: a repair deletes it. */
    EXTRA,
    /** Both have the row, with different contents: a repair updates it. */
    CHANGED
  }

  /**
   * One differing key of one copy.
   *
   * @param shard the copy
   * @param key the primary key as PostgreSQL prints a row of its columns: {@code (42)}, {@code (fr,2024)}
   */
  public record KeyDiff(String shard, String key, Kind kind) {}

  /**
   * A key no version of which is held by a strict majority of the copies.
   *
   * @param versions for each shard, a label of the version it holds: {@code absent}, or {@code v1},
   *     {@code v2}, ... (equal labels: equal rows)
   */
  public record Unresolved(String key, Map<String, String> versions) {
    public Unresolved {
      versions = Map.copyOf(versions);
    }
  }

  /** The copies that agree with the majority at every key (none when a key has no majority). */
  public List<String> agreeing() {
    return unresolvedKeys > 0 ? List.of()
        : copies.stream().filter(c -> c.differing() == 0).map(Copy::shard).toList();
  }

  /**
   * A step of a verification or repair, for progress output.
   *
   * @param step {@code locking}, {@code checksums}, {@code buckets}, {@code rows}, or {@code repair SHARD}
   * @param done units of the step done: copies locked or summed, buckets compared, rows written
   * @param total units of the step in all (0 when unknown)
   * @param rows rows read so far (checksums and row comparison) or to write (repair)
   */
  public record Progress(String step, long done, long total, long rows) {}

  /**
   * How to compare.
   *
   * @param buckets primary-key hash buckets to narrow a difference down by (a power of two, 1..65536)
   * @param listLimit differing keys listed per copy (and keys without a majority listed), 1..100000
   * @param lockTimeout how long to wait for each copy's epoch row (docs/reference-verify.md)
   * @param lockAttempts rounds of locking every copy to try before giving up with ABORTED, 1..100
   */
  public record Settings(int buckets, int listLimit, Duration lockTimeout, int lockAttempts) {
    /** 256 buckets, 20 keys listed, 5 s per lock, 5 rounds. */
    public static final Settings DEFAULTS = new Settings(256, 20, Duration.ofSeconds(5), 5);

    /** @throws IllegalArgumentException naming the setting and its rule */
    public Settings {
      if (buckets < 1 || buckets > 65_536 || Integer.bitCount(buckets) != 1) {
        throw new IllegalArgumentException("buckets: a power of two from 1 to 65536, got " + buckets);
      }
      if (listLimit < 1 || listLimit > 100_000) {
        throw new IllegalArgumentException("list limit: 1 to 100000, got " + listLimit);
      }
      Objects.requireNonNull(lockTimeout, "lock timeout");
      if (lockTimeout.isNegative() || lockTimeout.isZero()) {
        throw new IllegalArgumentException("lock timeout: must be positive, got " + lockTimeout);
      }
      if (lockAttempts < 1 || lockAttempts > 100) {
        throw new IllegalArgumentException("lock attempts: 1 to 100, got " + lockAttempts);
      }
    }
  }
}
