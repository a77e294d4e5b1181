package io.shardmap.core.sql;

import io.shardmap.core.TxnId;
import io.shardmap.core.sql.DecisionRows.Decision;
import io.shardmap.core.sql.PreparedTransactions.Prepared;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The in-doubt transactions of one Shardmap cluster across its shards: every prepared transaction of the
 * namespace on every shard, with the decision its decider holds, and what a resolver does about each. The
 * one scan the directory servers' resolver acts on and {@code shardmapctl txn list} prints, so an operator
 * sees exactly what the resolver sees.
 *
 * <p>Reads only: it lists {@code pg_prepared_xacts} and reads {@code shardmap.txn_decisions}; finishing and
 * deciding are the caller's ({@link PreparedTransactions}, {@link DecisionRows}).
 */
public final class InDoubt {
  private InDoubt() {}

  /** What the decider named in a gid says about it, as read by the scan. */
  public enum State {
    /** A COMMIT row stands: the coordinator reached its commit point. */
    COMMIT,
    /** An ABORT row stands (a resolver decided before the coordinator could): every participant rolls back. */
    ABORT,
    /** No row yet: the coordinator is still deciding, or died before deciding. */
    UNDECIDED,
    /** The decider is not registered, or its database could not be read: nothing can be decided now. */
    DECIDER_UNAVAILABLE
  }

  /** What a resolver does with one in-doubt transaction. */
  public enum Action {
    /** {@code COMMIT PREPARED} on the shard that holds it. */
    COMMIT_PREPARED,
    /** {@code ROLLBACK PREPARED} on the shard that holds it. */
    ROLLBACK_PREPARED,
    /** Record ABORT on its decider ({@link DecisionRows#decideAbort}), then act on the decision that stands. */
    DECIDE_ABORT,
    /** Nothing yet: undecided, and younger than the abort timeout (its coordinator may still decide). */
    WAIT,
    /** Nothing: its decider cannot be reached; the next scan tries again. */
    LEAVE
  }

  /**
   * One prepared transaction of the cluster.
   *
   * @param shard the shard whose database holds it prepared, where it is finished
   * @param prepared the transaction as {@link PreparedTransactions#list} found it (age by that server's clock)
   * @param state what its decider said
   * @param deciderProblem why the decider could not say ({@link State#DECIDER_UNAVAILABLE}), else null
   */
  public record Entry(String shard, Prepared prepared, State state, String deciderProblem) {
    public TxnId id() {
      return prepared.id();
    }
  }

  /** A step of the scan that failed on one shard: {@code list} (its prepared transactions) or {@code decisions}. */
  public record Failure(String shard, String step, Exception error) {}

  /**
   * Connections to the shards by name; the caller owns them (the scan closes none).
   */
  @FunctionalInterface
  public interface Connections {
    /**
     * A connection in autocommit to the primary of {@code shard}, one of the scanned shards.
     *
     * @throws SQLException when it cannot be reached
     */
    Connection connection(String shard) throws SQLException;
  }

  /**
   * What one scan found.
   *
   * @param entries every prepared transaction of the namespace on the shards listed, oldest first
   * @param listed the shards whose prepared transactions were listed (a failed shard is absent)
   * @param failures the shards a step failed on
   */
  public record Scan(List<Entry> entries, Set<String> listed, List<Failure> failures) {
    public Scan {
      entries = List.copyOf(entries);
      listed = Set.copyOf(listed);
      failures = List.copyOf(failures);
    }

    /** The age of the oldest prepared transaction, if any (by the clock of the server holding it). */
    public Optional<Duration> oldest() {
      return entries.stream().map(e -> e.prepared().age()).max(Comparator.naturalOrder());
    }

    /** The gids prepared on some listed shard. */
    public Set<TxnId> preparedIds() {
      Set<TxnId> out = new HashSet<>();
      for (Entry e : entries) {
        out.add(e.id());
      }
      return out;
    }
  }

  /**
   * Lists the prepared transactions of {@code namespace} on every one of {@code shards}, then reads their
   * decisions, one query per decider. A shard that fails is reported in {@link Scan#failures} and the others
   * are scanned; a transaction whose decider is not among {@code shards} or failed is {@link
   * State#DECIDER_UNAVAILABLE}.
   *
   * @throws io.shardmap.core.ShardmapException INVALID_ARGUMENT if {@code namespace} is not a namespace
   */
  public static Scan scan(Collection<String> shards, Connections connections, String namespace) {
    TxnId.requireNamespace(namespace);
    Set<String> known = new LinkedHashSet<>(shards);
    List<Failure> failures = new ArrayList<>();
    Set<String> listed = new LinkedHashSet<>();
    List<Entry> found = new ArrayList<>();
    for (String shard : known) {
      try {
        for (Prepared p : PreparedTransactions.list(connections.connection(shard), namespace)) {
          found.add(new Entry(shard, p, State.UNDECIDED, null));
        }
        listed.add(shard);
      } catch (SQLException | RuntimeException e) {
        failures.add(new Failure(shard, "list", e));
      }
    }
    Map<String, List<TxnId>> byDecider = new LinkedHashMap<>();
    for (Entry e : found) {
      byDecider.computeIfAbsent(e.id().decider(), d -> new ArrayList<>()).add(e.id());
    }
    Map<TxnId, Decision> decisions = new HashMap<>();
    Map<String, String> unavailable = new LinkedHashMap<>();
    for (Map.Entry<String, List<TxnId>> d : byDecider.entrySet()) {
      String decider = d.getKey();
      if (!known.contains(decider)) {
        unavailable.put(decider, "decider shard " + decider + " is not registered");
        continue;
      }
      try {
        decisions.putAll(DecisionRows.readAll(connections.connection(decider), d.getValue()));
      } catch (SQLException | RuntimeException e) {
        failures.add(new Failure(decider, "decisions", e));
        unavailable.put(decider, "decider shard " + decider + " could not be read: " + e.getMessage());
      }
    }
    List<Entry> entries = new ArrayList<>(found.size());
    for (Entry e : found) {
      String problem = unavailable.get(e.id().decider());
      Decision decision = decisions.get(e.id());
      State state = problem != null ? State.DECIDER_UNAVAILABLE
          : decision == null ? State.UNDECIDED
          : decision == Decision.COMMIT ? State.COMMIT : State.ABORT;
      entries.add(new Entry(e.shard(), e.prepared(), state, problem));
    }
    entries.sort(Comparator.comparing((Entry e) -> e.prepared().age()).reversed()
        .thenComparing(e -> e.id().toString()).thenComparing(Entry::shard));
    return new Scan(entries, listed, failures);
  }

  /**
   * What a resolver does with a transaction in {@code state}, prepared {@code age} ago: a decision is acted
   * on at once; an undecided one is aborted only once it is {@code abortAfter} old, so a live coordinator,
   * which decides within milliseconds of its last prepare, is not overtaken.
   */
  public static Action action(State state, Duration age, Duration abortAfter) {
    return switch (state) {
      case COMMIT -> Action.COMMIT_PREPARED;
      case ABORT -> Action.ROLLBACK_PREPARED;
      case DECIDER_UNAVAILABLE -> Action.LEAVE;
      case UNDECIDED -> age.compareTo(abortAfter) >= 0 ? Action.DECIDE_ABORT : Action.WAIT;
    };
  }

  /** The action that follows from the decision {@link DecisionRows#decideAbort} returned. */
  public static Action actionOn(Decision decided) {
    return decided == Decision.COMMIT ? Action.COMMIT_PREPARED : Action.ROLLBACK_PREPARED;
  }
}
