package io.shardmap.server.internal;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.PatroniSource;
import io.shardmap.store.KeyValue;
import java.net.URI;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * What Patroni's keys under one cluster's prefix say about its primary and replicas (docs/patroni.md),
 * parsed from one consistent read or watched copy. Immutable; pure.
 *
 * <p>The primary is the member the {@code leader} key names, and only once that member's own key says it
 * runs as the primary ({@code role} {@code master} in Patroni 3.0, {@code primary} later, {@code state}
 * {@code running}). Patroni writes the leader key before it promotes, and the member's role after the
 * promotion completed: routing writes to a node on the leader key alone would send them to a standby that
 * still refuses writes. Until both agree there is no primary to publish, and the map keeps the last one
 * (a dead or demoting node, whose refusals the SDK buffers). Replicas are the other members whose role is
 * {@code replica} and state {@code running}, by name.
 */
final class PatroniView {
  /** Patroni's default {@code namespace}. */
  static final String DEFAULT_NAMESPACE = "/service";

  /** A member as its key describes it; {@code endpoint} is null when its {@code conn_url} is unusable. */
  record Member(String name, String role, String state, Endpoint endpoint, String connUrl) {
    boolean runsAsPrimary() {
      return ("master".equals(role) || "primary".equals(role)) && "running".equals(state);
    }

    boolean runsAsReplica() {
      return "replica".equals(role) && "running".equals(state) && endpoint != null;
    }
  }

  /** The endpoints to publish: the confirmed primary and the running replicas. */
  record Endpoints(String leader, Endpoint primary, List<Endpoint> replicas) {}

  private final String prefix;
  private final long revision;
  private final boolean empty;
  private final String leader;
  private final Map<String, Member> members;
  private final JsonObject config;

  private PatroniView(String prefix, long revision, boolean empty, String leader, Map<String, Member> members,
      JsonObject config) {
    this.prefix = prefix;
    this.revision = revision;
    this.empty = empty;
    this.leader = leader;
    this.members = members;
    this.config = config;
  }

  /**
   * The key prefix of the cluster, {@code /{namespace}/{scope}/} with repeated slashes collapsed, as
   * Patroni builds it (so {@code ns}, {@code /ns} and {@code /ns/} name the same cluster).
   */
  static String prefix(PatroniSource s) {
    String ns = s.getNamespace().isEmpty() ? DEFAULT_NAMESPACE : s.getNamespace();
    return ("/" + ns + "/" + s.getScope() + "/").replaceAll("/+", "/");
  }

  /** Checks a source's fields (as given in a request); returns it with the output-only field cleared. */
  static PatroniSource valid(String field, PatroniSource s) {
    String scope = s.getScope();
    if (scope.isEmpty() || scope.length() > 128 || scope.contains("/") || !printable(scope)) {
      throw ShardmapException.invalid(field + ".scope", "Patroni's scope (the cluster's name) is required: 1-128 "
          + "printable characters without '/', got '" + scope + "'");
    }
    if (s.getNamespace().length() > 256 || !printable(s.getNamespace())) {
      throw ShardmapException.invalid(field + ".namespace", "at most 256 printable characters (empty for "
          + "Patroni's default " + DEFAULT_NAMESPACE + ")");
    }
    if (s.getDatabase().length() > 63 || !printable(s.getDatabase())) {
      throw ShardmapException.invalid(field + ".database", "a PostgreSQL database name of at most 63 characters "
          + "(empty for the database of the members' conn_url)");
    }
    return s.toBuilder().setObservedRevision(0).build();
  }

  private static boolean printable(String v) {
    return v.chars().allMatch(c -> c > 0x20 && c < 0x7f);
  }

  /** Parses the keys under {@code prefix} as read (or watched) at {@code revision}. */
  static PatroniView parse(String prefix, Collection<KeyValue> kvs, long revision) {
    String leader = null;
    Map<String, Member> members = new TreeMap<>();
    JsonObject config = null;
    String membersPrefix = prefix + "members/";
    for (KeyValue kv : kvs) {
      String key = kv.key();
      if (key.equals(prefix + "leader")) {
        leader = kv.valueUtf8().trim();
      } else if (key.startsWith(membersPrefix) && key.length() > membersPrefix.length()) {
        String name = key.substring(membersPrefix.length());
        members.put(name, member(name, kv.valueUtf8()));
      } else if (key.equals(prefix + "config")) {
        config = object(kv.valueUtf8());
      }
    }
    return new PatroniView(prefix, revision, kvs.isEmpty(), leader, Map.copyOf(members), config);
  }

  private static Member member(String name, String json) {
    JsonObject o = object(json);
    if (o == null) {
      return new Member(name, null, null, null, null);
    }
    String connUrl = string(o, "conn_url");
    return new Member(name, string(o, "role"), string(o, "state"), endpoint(connUrl), connUrl);
  }

  /** {@code postgres://host:port/db} as an endpoint, or null when it is not one. */
  static Endpoint endpoint(String connUrl) {
    if (connUrl == null) {
      return null;
    }
    try {
      URI u = new URI(connUrl);
      String host = u.getHost();
      if (host == null || u.getPort() < 1) {
        return null;
      }
      if (host.startsWith("[") && host.endsWith("]")) {
        host = host.substring(1, host.length() - 1);
      }
      String path = u.getPath() == null ? "" : u.getPath().replaceFirst("^/", "");
      return Endpoint.newBuilder().setHost(host).setPort(u.getPort()).setDatabase(path.isEmpty() ? "postgres" : path)
          .build();
    } catch (java.net.URISyntaxException e) {
      return null;
    }
  }

  private static JsonObject object(String json) {
    try {
      JsonElement e = JsonParser.parseString(json);
      return e.isJsonObject() ? e.getAsJsonObject() : null;
    } catch (RuntimeException e) {
      return null;
    }
  }

  private static String string(JsonObject o, String field) {
    JsonElement e = o.get(field);
    return e != null && e.isJsonPrimitive() ? e.getAsString() : null;
  }

  String prefix() {
    return prefix;
  }

  long revision() {
    return revision;
  }

  /** No key at all under the prefix: no such cluster (or it was removed). */
  boolean isEmpty() {
    return empty;
  }

  String leader() {
    return leader;
  }

  Map<String, Member> members() {
    return members;
  }

  /**
   * The dynamic configuration's {@code failsafe_mode}: true, false, or null when the cluster has no
   * configuration key (it never bootstrapped) or it does not parse.
   */
  Boolean failsafeMode() {
    if (config == null) {
      return null;
    }
    JsonElement e = config.get("failsafe_mode");
    return e != null && e.isJsonPrimitive() && e.getAsJsonPrimitive().isBoolean() ? e.getAsBoolean() : Boolean.FALSE;
  }

  /** The dynamic configuration's {@code synchronous_mode} (false when absent). */
  boolean synchronousMode() {
    JsonElement e = config == null ? null : config.get("synchronous_mode");
    return e != null && e.isJsonPrimitive() && e.getAsJsonPrimitive().isBoolean() && e.getAsBoolean();
  }

  /**
   * The primary and replicas to publish, with {@code database} on each (empty: the members' own), or null
   * while there is no confirmed primary ({@link #whyNoPrimary} says why).
   */
  Endpoints endpoints(String database) {
    if (whyNoPrimary() != null) {
      return null;
    }
    Member p = members.get(leader);
    List<Endpoint> replicas = new ArrayList<>();
    for (Member m : members.values()) {
      if (!m.name().equals(leader) && m.runsAsReplica()) {
        replicas.add(withDatabase(m.endpoint(), database));
      }
    }
    return new Endpoints(leader, withDatabase(p.endpoint(), database), List.copyOf(replicas));
  }

  /** Why {@link #endpoints} has no primary, or null when it has one. */
  String whyNoPrimary() {
    if (empty) {
      return "there is no key under " + prefix + " (no such Patroni cluster in this etcd)";
    }
    if (leader == null || leader.isEmpty()) {
      return "the cluster has no leader (no " + prefix + "leader key: a failover or bootstrap is under way, or "
          + "no member runs)";
    }
    Member p = members.get(leader);
    if (p == null) {
      return "the leader key names '" + leader + "', which has no member key under " + prefix + "members/";
    }
    if (!p.runsAsPrimary()) {
      return "the leader '" + leader + "' does not run as the primary yet (role " + p.role() + ", state "
          + p.state() + ")";
    }
    if (p.endpoint() == null) {
      return "the leader '" + leader + "' has no usable conn_url (" + p.connUrl() + ")";
    }
    return null;
  }

  private static Endpoint withDatabase(Endpoint e, String database) {
    return database.isEmpty() ? e : e.toBuilder().setDatabase(database).build();
  }
}
