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

  interface Opener {
    Participant open(CrossShardTransaction tx, String keyspace, long intKey, ShardKey key) throws SQLException;
  }

  private final Opener opener;
  private final Map<String, Participant> participants = new LinkedHashMap<>();
  private final List<UsedRoute> routes = new ArrayList<>();
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

  synchronized List<UsedRoute> routes() {
    return List.copyOf(routes);
  }

  /** Ends the work's part: no more connections; the participants, in the order opened. */
  synchronized List<Participant> end() {
    ended = true;
    return new ArrayList<>(participants.values());
  }
}
