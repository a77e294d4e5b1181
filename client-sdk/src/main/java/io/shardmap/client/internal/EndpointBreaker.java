package io.shardmap.client.internal;

import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.github.resilience4j.circuitbreaker.CircuitBreakerConfig;
import io.github.resilience4j.circuitbreaker.CircuitBreakerConfig.SlidingWindowType;
import io.shardmap.client.DataOptions;
import java.sql.SQLException;
import java.sql.SQLTransientConnectionException;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The circuit breaker of one shard endpoint (a primary or a replica) of one {@link ShardPools.ShardPool}: the
 * Resilience4j breaker, what names it in messages and logs, and which outcomes count as the endpoint failing.
 * Lives and dies with its pool, so new endpoints start with a closed breaker. Not API.
 *
 * <p>Every permission taken ({@link #tryAcquire}) must be followed by exactly one {@link #record} of the
 * call's outcome: a half-open breaker lets only so many probes through and decides once they all reported.
 */
final class EndpointBreaker {
  private static final Logger log = Logger.getLogger(EndpointBreaker.class.getName());

  private final String shard;
  private final String role;
  private final String endpoint;
  private final CircuitBreaker breaker;
  private final long openNanos;
  private final long slowMillis;
  /** When the breaker last opened (System.nanoTime), to tell a refused caller when the next probe goes. */
  private volatile long openedAt;

  private EndpointBreaker(String shard, String role, String endpoint, CircuitBreaker breaker, DataOptions o) {
    this.shard = shard;
    this.role = role;
    this.endpoint = endpoint;
    this.breaker = breaker;
    this.openNanos = o.breakerOpenDuration().toNanos();
    this.slowMillis = o.breakerSlowCallThreshold().toMillis();
  }

  /** The configuration of every breaker of {@code o}'s pools; see the {@code DataOptions.breaker*} settings. */
  static CircuitBreakerConfig config(DataOptions o) {
    return CircuitBreakerConfig.custom()
        .slidingWindowType(SlidingWindowType.COUNT_BASED)
        .slidingWindowSize(o.breakerWindowSize())
        .minimumNumberOfCalls(o.breakerMinimumCalls())
        .failureRateThreshold(o.breakerFailureRateThreshold())
        .slowCallRateThreshold(o.breakerFailureRateThreshold())
        .slowCallDurationThreshold(o.breakerSlowCallThreshold())
        .waitDurationInOpenState(o.breakerOpenDuration())
        .permittedNumberOfCallsInHalfOpenState(o.breakerHalfOpenCalls())
        // Half-open is entered by the first call after the open duration: no timer thread per endpoint.
        .automaticTransitionFromOpenToHalfOpenEnabled(false)
        .build();
  }

  /**
   * A breaker for {@code shard}'s endpoint {@code role} ("primary", "replica0", ...), named
   * {@code shard-<shard>-<role>}; {@code enabled} false gives one that always permits and never opens
   * (DataOptions.breakerEnabled false, or pools whose calls the SDK does not guard).
   */
  static EndpointBreaker create(CircuitBreakerConfig config, DataOptions o, String shard, String role,
      String endpoint, boolean enabled) {
    CircuitBreaker cb = CircuitBreaker.of("shard-" + shard + "-" + role, config);
    EndpointBreaker b = new EndpointBreaker(shard, role, endpoint, cb, o);
    if (!enabled) {
      cb.transitionToDisabledState();
      return b;
    }
    cb.getEventPublisher().onStateTransition(ev -> b.transitioned(ev.getStateTransition()));
    return b;
  }

  CircuitBreaker breaker() {
    return breaker;
  }

  String shard() {
    return shard;
  }

  String endpoint() {
    return endpoint;
  }

  /** Asks for a call on the endpoint; false when the breaker is open (or half-open with its probes out). */
  boolean tryAcquire() {
    return breaker.tryAcquirePermission();
  }

  /**
   * Reports a call's outcome ({@code failure} null when it returned) measured from {@code startNanos}: a
   * failure of the connection counts against the endpoint, anything else (the work's own SQL errors and
   * exceptions) shows an endpoint that answered; the duration counts for slow calls either way.
   */
  void record(long startNanos, Throwable failure) {
    long nanos = System.nanoTime() - startNanos;
    if (failure != null && isEndpointFailure(failure)) {
      breaker.onError(nanos, TimeUnit.NANOSECONDS, failure);
    } else {
      breaker.onSuccess(nanos, TimeUnit.NANOSECONDS);
    }
  }

  /**
   * Connection-class failures anywhere in {@code t}'s causes: the session was lost or could not be had
   * ({@link SqlStates#isConnectionLoss}, SQLSTATE 08xxx, 57P01-57P03), no pooled connection came within the
   * timeout (HikariCP's {@link SQLTransientConnectionException}), or the server is going away (57P0x).
   */
  static boolean isEndpointFailure(Throwable t) {
    for (Throwable c = t; c != null; c = c.getCause() == c ? null : c.getCause()) {
      if (c instanceof CircuitOpenException) {
        return false; // refused before anything was tried: says nothing new about the endpoint
      }
      if (c instanceof SQLException e) {
        String s = e.getSQLState();
        if (e instanceof SQLTransientConnectionException || SqlStates.isConnectionLoss(e)
            || (s != null && s.startsWith("57P0"))) {
          return true;
        }
      }
    }
    return false;
  }

  /** The refusal of a call while the breaker is open, saying what it saw and when it probes again. */
  CircuitOpenException refusal(Object origin) {
    CircuitBreaker.Metrics m = breaker.getMetrics();
    int calls = m.getNumberOfBufferedCalls();
    StringBuilder why = new StringBuilder();
    if (m.getNumberOfFailedCalls() > 0 || m.getNumberOfSlowCalls() == 0) {
      why.append(percent(m.getFailureRate())).append(" of the last ").append(calls)
          .append(" calls failed by connection loss or timeout");
    }
    if (m.getNumberOfSlowCalls() > 0) {
      why.append(why.length() == 0 ? "" : ", ").append(percent(m.getSlowCallRate())).append(" of the last ")
          .append(calls).append(" calls took longer than ").append(slowMillis).append(" ms");
    }
    String when;
    if (breaker.getState() == CircuitBreaker.State.HALF_OPEN) {
      when = "a probe is under way";
    } else {
      long leftMs = Math.max(0, TimeUnit.NANOSECONDS.toMillis(openNanos - (System.nanoTime() - openedAt)));
      when = "a probe in <= " + leftMs + " ms";
    }
    return new CircuitOpenException(shard, endpoint, "shard '" + shard + "' " + role + " " + endpoint
        + ": circuit breaker open (" + why + "); calls fail at once until " + when, origin);
  }

  private static String percent(float rate) {
    return rate < 0 ? "?%" : Math.round(rate) + "%";
  }

  private void transitioned(CircuitBreaker.StateTransition t) {
    CircuitBreaker.State to = t.getToState();
    if (to == CircuitBreaker.State.OPEN || to == CircuitBreaker.State.FORCED_OPEN) {
      openedAt = System.nanoTime();
    }
    CircuitBreaker.Metrics m = breaker.getMetrics();
    Level level = to == CircuitBreaker.State.OPEN ? Level.WARNING : Level.INFO;
    if (log.isLoggable(level)) {
      log.log(level, "shardmap data: shard '" + shard + "' " + role + " " + endpoint + ": circuit breaker "
          + t.getFromState() + " -> " + to + (to == CircuitBreaker.State.OPEN
              ? " (" + percent(m.getFailureRate()) + " of the last " + m.getNumberOfBufferedCalls()
                  + " calls failed, " + percent(m.getSlowCallRate()) + " were slow); calls fail at once for "
                  + TimeUnit.NANOSECONDS.toMillis(openNanos) + " ms, then probe"
              : to == CircuitBreaker.State.HALF_OPEN ? ": probing" : ""));
    }
  }
}
