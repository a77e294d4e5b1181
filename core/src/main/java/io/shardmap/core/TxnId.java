package io.shardmap.core;

import java.util.Locale;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The global id of one cross-shard transaction: the {@code PREPARE TRANSACTION} gid on every participant and
 * the key of its decision. {@code smx1:<namespace>:<decider>:<coordinator>:<uuid>}, at most 192 characters
 * (PostgreSQL allows 199):
 *
 * <ul>
 *   <li>{@code smx1}: Shardmap's, version 1. A prepared transaction whose gid does not parse as a
 *       {@code TxnId} is not Shardmap's, and nothing of Shardmap ever touches it;
 *   <li>{@code namespace}: the Shardmap cluster (1-40 of {@code [a-z0-9_-]}, from its etcd prefix: {@link
 *       #namespaceOf}), so two clusters sharing databases never resolve each other's transactions;
 *   <li>{@code decider}: the participant shard whose own commit carries the decision ({@code
 *       io.shardmap.core.sql.DecisionRows}), where a resolver finding another participant's prepared
 *       transaction reads or makes the decision (a shard name: {@link Names#shard});
 *   <li>{@code coordinator}: the process that ran it (1-40 of {@code [A-Za-z0-9_-]}), for operators and
 *       for a coordinator to find its own;
 *   <li>{@code uuid}: unique per transaction (lower-case, canonical form).
 * </ul>
 *
 * Immutable; equal when their text is.
 */
public final class TxnId {
  /** What every Shardmap gid starts with. */
  public static final String SCHEME = "smx1";

  private static final Pattern NAMESPACE = Pattern.compile("[a-z0-9_-]{1,40}");
  private static final Pattern COORDINATOR = Pattern.compile("[A-Za-z0-9_-]{1,40}");
  private static final Pattern DECIDER = Pattern.compile("[a-z][a-z0-9_-]{0,62}");
  private static final Pattern GID = Pattern.compile("smx1:([a-z0-9_-]{1,40}):([a-z][a-z0-9_-]{0,62}):"
      + "([A-Za-z0-9_-]{1,40}):([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})");

  private final String namespace;
  private final String decider;
  private final String coordinator;
  private final UUID uuid;
  private final String text;

  private TxnId(String namespace, String decider, String coordinator, UUID uuid) {
    this.namespace = namespace;
    this.decider = decider;
    this.coordinator = coordinator;
    this.uuid = uuid;
    this.text = SCHEME + ":" + namespace + ":" + decider + ":" + coordinator + ":" + uuid;
  }

  /**
   * A new id of a transaction coordinated by {@code coordinator} in cluster {@code namespace}, whose decision
   * the shard {@code decider} carries.
   *
   * @throws ShardmapException INVALID_ARGUMENT naming the field and its rule
   */
  public static TxnId of(String namespace, String decider, String coordinator, UUID uuid) {
    requireNamespace(namespace);
    if (decider == null || !DECIDER.matcher(decider).matches()) {
      throw ShardmapException.invalid("decider", "a shard name: 1-63 characters of [a-z0-9_-], starting with a "
          + "letter, got '" + decider + "'");
    }
    if (coordinator == null || !COORDINATOR.matcher(coordinator).matches()) {
      throw ShardmapException.invalid("coordinator", "1-40 characters of [A-Za-z0-9_-], got '" + coordinator + "'");
    }
    if (uuid == null) {
      throw ShardmapException.invalid("uuid", "is required");
    }
    return new TxnId(namespace, decider, coordinator, uuid);
  }

  /** A new id with a random UUID. */
  public static TxnId random(String namespace, String decider, String coordinator) {
    return of(namespace, decider, coordinator, UUID.randomUUID());
  }

  /**
   * {@code namespace} when it is one (1-40 characters of {@code [a-z0-9_-]}).
   *
   * @throws ShardmapException INVALID_ARGUMENT, field {@code namespace}, otherwise
   */
  public static String requireNamespace(String namespace) {
    if (namespace == null || !NAMESPACE.matcher(namespace).matches()) {
      throw ShardmapException.invalid("namespace", "1-40 characters of [a-z0-9_-], got '" + namespace + "'");
    }
    return namespace;
  }

  /**
   * The id that {@code gid} spells.
   *
   * @throws ShardmapException INVALID_ARGUMENT, field {@code gid}, when it is not a Shardmap gid of this
   *     version (the message says which part is wrong)
   */
  public static TxnId parse(String gid) {
    if (gid == null) {
      throw ShardmapException.invalid("gid", "is required");
    }
    Matcher m = GID.matcher(gid);
    if (!m.matches()) {
      throw ShardmapException.invalid("gid", "must be " + SCHEME + ":<namespace [a-z0-9_-]{1,40}>:<decider shard>:"
          + "<coordinator [A-Za-z0-9_-]{1,40}>:<uuid, lower case>, got '" + abbreviate(gid) + "'");
    }
    return new TxnId(m.group(1), m.group(2), m.group(3), UUID.fromString(m.group(4)));
  }

  /** Whether {@code gid} is a Shardmap gid of cluster {@code namespace} (what a resolver may touch). */
  public static boolean belongsTo(String gid, String namespace) {
    if (gid == null) {
      return false;
    }
    Matcher m = GID.matcher(gid);
    return m.matches() && m.group(1).equals(namespace);
  }

  /**
   * The {@code LIKE} pattern of every gid of cluster {@code namespace} (its characters need no escaping but
   * {@code _}, escaped with {@code \}). A row it matches must still pass {@link #belongsTo}.
   */
  public static String likePattern(String namespace) {
    return (SCHEME + ":" + namespace + ":").replace("_", "\\_") + "%";
  }

  /**
   * The namespace of the cluster whose etcd prefix is {@code etcdPrefix}: its path without the leading
   * slash, lower-cased, {@code /} and {@code .} made {@code -} ({@code /shardmap/prod} is
   * {@code shardmap-prod}).
   *
   * @throws ShardmapException INVALID_ARGUMENT when that is not a namespace (longer than 40 characters, or
   *     other characters), naming the prefix
   */
  public static String namespaceOf(String etcdPrefix) {
    if (etcdPrefix == null || !etcdPrefix.startsWith("/")) {
      throw ShardmapException.invalid("etcdPrefix", "must start with '/', got '" + etcdPrefix + "'");
    }
    String ns = etcdPrefix.substring(1).toLowerCase(Locale.ROOT).replace('/', '-').replace('.', '-');
    if (!NAMESPACE.matcher(ns).matches()) {
      throw ShardmapException.invalid("etcdPrefix", "its transaction namespace '" + ns + "' must be 1-40 "
          + "characters of [a-z0-9_-]: use a shorter etcd prefix");
    }
    return ns;
  }

  public String namespace() {
    return namespace;
  }

  /** The shard whose commit carries the decision. */
  public String decider() {
    return decider;
  }

  public String coordinator() {
    return coordinator;
  }

  public UUID uuid() {
    return uuid;
  }

  /** The gid, as given to {@code PREPARE TRANSACTION}. */
  @Override
  public String toString() {
    return text;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof TxnId t && t.text.equals(text);
  }

  @Override
  public int hashCode() {
    return text.hashCode();
  }

  private static String abbreviate(String s) {
    return s.length() <= 80 ? s : s.substring(0, 80) + "...";
  }
}
