package io.shardmap.client;

import io.shardmap.client.internal.txn.Participant;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import java.sql.Connection;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One run of a cross-shard transaction's work ({@link ShardmapData#acrossShards}): hands out one connection
 * per shard, opened the first time a key of that shard is asked for, each in a transaction that the SDK
 * ends for all of them together. Keys of any keyspace and strategy may be mixed; two keys on the same shard
 * share its connection (and transaction).
 *
 * <p>Valid only while its work runs, on the work's thread. The connections refuse {@code commit},
 * {@code rollback}, {@code close}, {@code setAutoCommit} and SQL that ends the transaction.
 */
public final class CrossShardTransaction {
  /** A key the work asked for and the route it got, so a fence's refusal can be matched to it. */
  record UsedRoute(String keyspace, long intKey, ShardKey key, Route route) {}

  /** A reference table the work asked for the copies of, with the record's epoch it declared. */
  record UsedReference(String keyspace, String table, long epoch) {}

  interface Opener {
    Participant open(CrossShardTransaction tx, String keyspace, long intKey, ShardKey key) throws SQLException;

    /** The record of {@code table} among {@code keyspace}'s reference tables. */
    io.shardmap.proto.v1.ReferenceTable reference(String keyspace, String table);

    /** The participant of {@code shard}, opened in {@code tx} if it is not yet. */
    Participant openShard(CrossShardTransaction tx, String shard) throws SQLException;
  }

  private final Opener opener;
  private final Map<String, Participant> participants = new LinkedHashMap<>();
  private final List<UsedRoute> routes = new ArrayList<>();
  private final List<UsedReference> references = new ArrayList<>();
  /** Per shard, the reference epochs its transaction declares (canonical table to epoch). */
  private final Map<String, Map<String, Long>> declared = new java.util.HashMap<>();
  private boolean ended;

  CrossShardTransaction(Opener opener) {
    this.opener = opener;
  }

  /**
   * The connection of the shard that owns {@code key} in {@code keyspace}, in this transaction.
   *
   * @throws ShardmapException NOT_FOUND for an unknown keyspace, INVALID_ARGUMENT for a key of the wrong
   *     type or a missing one, FAILED_PRECONDITION once the work has returned
   * @throws SQLException when the shard gives no connection
   */
  public synchronized Connection connection(String keyspace, ShardKey key) throws SQLException {
    if (key == null) {
      throw ShardmapException.invalid("key", "a key is required");
    }
    return open(keyspace, 0, key);
  }

  /** {@link #connection(String, ShardKey)} for an integer key. */
  public synchronized Connection connection(String keyspace, long key) throws SQLException {
    return open(keyspace, key, null);
  }

  /**
   * The connections of every copy of reference table {@code table} of {@code keyspace}, by shard (sorted),
   * each in this transaction: a shard the work already opened gives the same connection. Each declares the
   * table's reference epoch for the rest of the transaction (sent with its next statement), which lets a
   * write of the copy pass its guard. Write every copy alike (as {@link ShardmapData#writeReference} does):
   * the copies commit together, and a copy left unwritten keeps its old rows.
   *
   * <p>{@code table} may be given in any form PostgreSQL would read as the record's name ({@code
   * public.countries}, {@code Countries}, {@code "public"."countries"}); unqualified, it matches the one
   * reference table of the keyspace with that name (docs/reference-sdk.md, "Table names").
   *
   * <p>When the table's copies change meanwhile (a shard added), a copy refuses the write (SQLSTATE SMR01):
   * the whole work runs again once the SDK sees the new copies (see {@link ShardmapData#acrossShards}).
   *
   * @throws ShardmapException NOT_FOUND naming the table when it is not a reference table of the keyspace,
   *     or for an unknown keyspace; INVALID_ARGUMENT for a malformed or ambiguous name; FAILED_PRECONDITION
   *     once the work has returned, or when the record names no copy
   * @throws SQLException when a shard gives no connection
   */
  public synchronized Map<String, Connection> referenceCopies(String keyspace, String table) throws SQLException {
    if (ended) {
      throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "this cross-shard transaction has ended: take "
          + "connections only inside its work");
    }
    if (keyspace == null || keyspace.isEmpty()) {
      throw ShardmapException.invalid("keyspace", "a keyspace is required");
    }
    io.shardmap.proto.v1.ReferenceTable t = opener.reference(keyspace, table);
    if (t.getCopiesCount() == 0) {
      throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "reference table " + t.getTable() + " of keyspace '"
          + keyspace + "' has no copy yet: its declaration has not finished (shardmap-migrator reference list)");
    }
    references.add(new UsedReference(keyspace, t.getTable(), t.getEpoch()));
    Map<String, Connection> out = new LinkedHashMap<>();
    for (String shard : new java.util.TreeSet<>(t.getCopiesList())) {
      Participant p = opener.openShard(this, shard);
      Map<String, Long> epochs = declared.computeIfAbsent(shard, s -> new java.util.TreeMap<>());
      Long before = epochs.put(t.getTable(), t.getEpoch());
      if (before == null || before != t.getEpoch()) {
        p.declareReferences(io.shardmap.core.sql.ReferenceGuard.declaration(epochs));
      }
      out.put(shard, p.connection());
    }
    return Collections.unmodifiableMap(out);
  }

  /** The shards this run has opened so far, in the order it opened them. */
  public synchronized Set<String> shards() {
    return Collections.unmodifiableSet(new java.util.LinkedHashSet<>(participants.keySet()));
  }

  private Connection open(String keyspace, long intKey, ShardKey key) throws SQLException {
    if (ended) {
      throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "this cross-shard transaction has ended: take "
          + "connections only inside its work");
    }
    return opener.open(this, keyspace, intKey, key).connection();
  }

  /** The participant of {@code shard}, if this run has opened it. */
  Participant participant(String shard) {
    return participants.get(shard);
  }

  void add(Participant p) {
    participants.put(p.shard(), p);
  }

  /** The participants opened so far, in order. */
  List<Participant> participants() {
    return new ArrayList<>(participants.values());
  }

  void used(UsedRoute r) {
    routes.add(r);
  }

  synchronized List<UsedReference> references() {
    return List.copyOf(references);
  }

  synchronized List<UsedRoute> routes() {
    return List.copyOf(routes);
  }

  /** Ends the work's part: no more connections; the participants, in the order opened. */
  synchronized List<Participant> end() {
    ended = true;
    return new ArrayList<>(participants.values());
  }
}
