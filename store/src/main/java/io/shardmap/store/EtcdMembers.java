package io.shardmap.store;

import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.KV;
import io.etcd.jetcd.Lease;
import io.etcd.jetcd.kv.GetResponse;
import io.etcd.jetcd.options.GetOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.BiFunction;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The etcd members of one {@link EtcdMetaStore}, one jetcd client (one gRPC connection) each, and the
 * choice of the member that requests and watches use.
 *
 * <p>Why not one jetcd client over all endpoints: its gRPC channel notices a dead connection only by
 * keep-alive pings, and grpc-java never pings more often than every 10 s (it raises any shorter
 * keep-alive time to 10 s), so a member that hangs with its sockets open (SIGSTOP, a frozen VM, a
 * full disk stalling its fsync) held every request and watch for 10 s plus the ping timeout. A
 * crashed member costs nothing either way: its closed socket fails the connection at once.
 *
 * <p>Instead every member is asked a serializable count-only read (answered by the member itself,
 * no raft round) every quarter of {@code memberTimeout}, at most one outstanding per member, on a
 * connection of its own: on the request connection a large request or answer (a 10 MB initial
 * load, a txn etcd refuses as too large) holds the check back behind it and made a busy member look
 * hung. A
 * member whose check stays unanswered for {@code memberTimeout} while another member answered a later
 * check, or whose check fails, is down; one that answers
 * is up again (until a member has answered once, its checks get the request timeout instead, which
 * covers connecting and a cold JVM's first call). The current member stays as long as it is up (no churn of watches); when it is down
 * and another is up, the first up member after it becomes current and everything still in flight on
 * a down member is told to leave it ({@link Occupant#memberLost}). With no member up, nothing moves:
 * requests wait for their own deadline as before. A single endpoint is never checked.
 *
 * <p>The checks also carry each member's raft term. A request that a follower forwarded to a leader
 * that then hung is lost with it; etcd answers the client only when its own request timeout (5 s plus
 * two election timeouts) passes. So a request still unanswered {@code memberTimeout} after its
 * member's term moved past the term it was sent in is told so ({@link Occupant#leaderChanged}).
 *
 * <p>All member state changes on the store's timer thread; occupants are called there and must only
 * hand work to other threads.
 */
final class EtcdMembers implements AutoCloseable {

  private static final Logger LOG = LoggerFactory.getLogger(EtcdMembers.class);
  private static final ByteSequence CHECK_KEY = ByteSequence.from(new byte[] {0});
  private static final GetOption CHECK_OPTION = GetOption.builder().withSerializable(true).withCountOnly(true).build();

  /** A call attempt or a watch stream using a member. */
  interface Occupant {
    /** The raft term of the member when the occupant started using it (0: unknown). */
    long startTerm();

    /**
     * The member stopped answering and another one is up: leave it. Called once, on the timer thread
     * (hand work elsewhere).
     */
    void memberLost(Member member, Member replacement, String why);

    /**
     * The member's raft term moved past {@link #startTerm()} at least {@code memberTimeout} ago and
     * this occupant is still waiting. Called once, on the timer thread. Watches ignore it: a leader
     * change does not lose what a member's watch serves from its own store.
     */
    void leaderChanged(Member member, long newTerm);
  }

  /** One member: its endpoint, its jetcd client and what the checks know about it. */
  static final class Member {
    final int index;
    final String endpoint;
    final Client client;
    final KV kv;
    final Lease leases;
    final io.etcd.jetcd.Watch watch;
    /** The liveness checks' own client (connection). */
    private final Client checkClient;
    private final KV checkKv;
    private final Set<Occupant> occupants = ConcurrentHashMap.newKeySet();
    private volatile boolean up = true;
    private volatile long term;
    // Timer-thread state (check is also read by close()).
    private volatile CompletableFuture<GetResponse> check;
    private long checkSentNanos;
    private long termChangedNanos;
    private String downReason;
    private boolean answered;
    /** When the last check this member answered was sent. */
    private long answeredCheckSentNanos;

    Member(int index, String endpoint, Client client, Client checkClient) {
      this.index = index;
      this.endpoint = endpoint;
      this.client = client;
      this.kv = client.getKVClient();
      this.leases = client.getLeaseClient();
      this.watch = client.getWatchClient();
      this.checkClient = checkClient;
      this.checkKv = checkClient == null ? null : checkClient.getKVClient();
    }

    void close() {
      try {
        client.close();
      } finally {
        if (checkClient != null) {
          checkClient.close();
        }
      }
    }

    /** The raft term of the member's last answer to a check; 0 before the first. */
    long term() {
      return term;
    }

    boolean up() {
      return up;
    }

    /** Registers an occupant; it stays until {@link #leave} or until it is told to leave. */
    void occupy(Occupant o) {
      occupants.add(o);
    }

    void leave(Occupant o) {
      occupants.remove(o);
    }

    @Override
    public String toString() {
      return "etcd member " + endpoint;
    }
  }

  private final List<Member> members;
  private final long memberTimeoutNanos;
  private final long firstCheckTimeoutNanos;
  private final ScheduledExecutorService timer;
  private final BiFunction<String, Throwable, StoreException> translate;
  private volatile Member current;
  private volatile boolean closed;
  private ScheduledFuture<?> checks;

  EtcdMembers(List<String> endpoints, Function<String, Client> clients, long memberTimeoutNanos,
      long firstCheckTimeoutNanos, ScheduledExecutorService timer, BiFunction<String, Throwable, StoreException> translate) {
    List<Member> built = new ArrayList<>();
    boolean checked = endpoints.size() > 1;
    try {
      for (String endpoint : endpoints) {
        Client client = clients.apply(endpoint);
        Client checkClient = null;
        try {
          checkClient = checked ? clients.apply(endpoint) : null;
        } finally {
          if (checked && checkClient == null) {
            client.close();
          }
        }
        built.add(new Member(built.size(), endpoint, client, checkClient));
      }
    } catch (RuntimeException e) {
      built.forEach(Member::close);
      throw e;
    }
    this.members = List.copyOf(built);
    this.memberTimeoutNanos = memberTimeoutNanos;
    this.firstCheckTimeoutNanos = Math.max(memberTimeoutNanos, firstCheckTimeoutNanos);
    this.timer = timer;
    this.translate = translate;
    this.current = members.get(0);
  }

  /** Starts the checks (only with more than one member: with one there is nowhere to move to). */
  void start() {
    if (members.size() > 1) {
      long period = Math.max(1, memberTimeoutNanos / 4);
      checks = timer.scheduleWithFixedDelay(this::tick, 0, period, TimeUnit.NANOSECONDS);
    }
  }

  /** The member new requests and watches use. */
  Member current() {
    return current;
  }

  private void tick() {
    try {
      tickOnce();
    } catch (RuntimeException e) {
      // A periodic task that throws is never run again; the checks must outlive any one bad round.
      LOG.warn("etcd liveness checks: a round failed; the next one runs as scheduled", e);
    }
  }

  private void tickOnce() {
    if (closed) {
      return;
    }
    long now = System.nanoTime();
    for (Member m : members) {
      if (m.check != null) {
        long timeout = m.answered ? memberTimeoutNanos : firstCheckTimeoutNanos;
        if (m.up && now - m.checkSentNanos > timeout && anotherAnsweredSince(m, m.checkSentNanos)) {
          markDown(m, "no answer to a liveness check within " + TimeUnit.NANOSECONDS.toMillis(timeout) + " ms");
        }
        continue; // one check at a time: a hung member must not pile them up
      }
      CompletableFuture<GetResponse> check;
      try {
        check = m.checkKv.get(CHECK_KEY, CHECK_OPTION);
      } catch (RuntimeException e) {
        markDown(m, translate.apply("liveness check of " + m.endpoint, e).getMessage());
        continue;
      }
      m.check = check;
      m.checkSentNanos = now;
      check.whenComplete((r, t) -> {
        try {
          timer.execute(() -> checked(m, check, r, t));
        } catch (RejectedExecutionException closing) {
          // The store is closing; nothing uses the members any more.
        }
      });
    }
    reselect();
    evacuateDown();
    leaderChanges(now);
  }

  private void checked(Member m, CompletableFuture<GetResponse> check, GetResponse r, Throwable t) {
    if (closed || m.check != check) {
      return;
    }
    m.check = null;
    if (t != null) {
      markDown(m, translate.apply("liveness check of " + m.endpoint, t).getMessage());
      reselect();
      evacuateDown();
      return;
    }
    m.answered = true;
    m.answeredCheckSentNanos = Math.max(m.answeredCheckSentNanos, m.checkSentNanos);
    long term = r.getHeader().getRaftTerm();
    if (term > m.term) {
      if (m.term != 0) {
        m.termChangedNanos = System.nanoTime();
      }
      m.term = term;
    }
    if (!m.up) {
      m.up = true;
      LOG.info("{} answers again (was down: {})", m, m.downReason);
      m.downReason = null;
    }
    reselect();
  }

  /**
   * Whether another member answered a check sent after {@code sentNanos}: then the late member is the
   * slow one. When every check is late together, this process or its host stalled (a GC pause, a
   * starved CPU), and nobody is declared down for it.
   */
  private boolean anotherAnsweredSince(Member late, long sentNanos) {
    for (Member m : members) {
      if (m != late && m.answered && m.answeredCheckSentNanos - sentNanos > 0) {
        return true;
      }
    }
    return false;
  }

  private void markDown(Member m, String why) {
    if (m.up) {
      m.up = false;
      m.downReason = why;
      LOG.warn("{} is down ({})", m, why);
    }
  }

  /** Moves off a down current member to the first up member after it, if there is one. */
  private void reselect() {
    Member cur = current;
    if (cur.up) {
      return;
    }
    for (int i = 1; i < members.size(); i++) {
      Member next = members.get((cur.index + i) % members.size());
      if (next.up) {
        current = next;
        LOG.warn("etcd requests and watches move from {} ({}) to {}", cur.endpoint, cur.downReason, next.endpoint);
        evacuateDown();
        return;
      }
    }
  }

  /** Tells everything still on a down member to leave it, once a current member is up. */
  private void evacuateDown() {
    Member cur = current;
    if (!cur.up) {
      return;
    }
    for (Member m : members) {
      if (m.up || m.occupants.isEmpty()) {
        continue;
      }
      for (Occupant o : List.copyOf(m.occupants)) {
        if (m.occupants.remove(o)) {
          o.memberLost(m, cur, m.downReason);
        }
      }
    }
  }

  private void leaderChanges(long now) {
    for (Member m : members) {
      if (m.termChangedNanos == 0 || now - m.termChangedNanos < memberTimeoutNanos || m.occupants.isEmpty()) {
        continue;
      }
      long term = m.term;
      for (Occupant o : List.copyOf(m.occupants)) {
        if (o.startTerm() != 0 && o.startTerm() < term && m.occupants.remove(o)) {
          o.leaderChanged(m, term);
        }
      }
    }
  }

  @Override
  public void close() {
    closed = true;
    if (checks != null) {
      checks.cancel(false);
    }
    // A liveness check still in flight would fail as its channel shuts down, and jetcd warns of each such
    // failure on stderr (a CLI's last lines): let the checks end first. A live member answers within
    // milliseconds; a hung one's check is abandoned after the member timeout, as the checks themselves do.
    long deadline = System.nanoTime() + memberTimeoutNanos;
    for (Member m : members) {
      CompletableFuture<GetResponse> inFlight = m.check;
      if (inFlight == null) {
        continue;
      }
      try {
        inFlight.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      } catch (ExecutionException | TimeoutException e) {
        // Its outcome no longer matters: nothing uses the members after this.
      }
    }
    RuntimeException first = null;
    for (Member m : members) {
      try {
        m.close();
      } catch (RuntimeException e) {
        first = first == null ? e : first;
      }
    }
    if (first != null) {
      throw first;
    }
  }
}
