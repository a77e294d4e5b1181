package io.shardmap.catalog;

import io.shardmap.core.Keys;


/**
 * Where each piece of the maps lives in etcd: the one key scheme that the directory server, the migrator
 * and the tools share ({@link ChangeDecoder} turns the records back into map changes). Documented for
 * operators in docs/data-model.md; this class and that page change together.
 *
 * <pre>
 * {root}/shards/{shard}                      Shard (protobuf)
 * {root}/shardrefs/{shard}                   empty; rewritten by every write that makes {shard} an owner
 * {root}/keyspaces/{ks}/spec                 KeyspaceSpec
 * {root}/keyspaces/{ks}/layout               HashLayout | RingLayout | DirectoryLayout | GeoLayout
 * {root}/keyspaces/{ks}/ranges/{hex start}   RangeAssignment (STRATEGY_RANGE; the first range's key ends in "/")
 * {root}/keyspaces/{ks}/entries/{hex key}    DirectoryEntry (STRATEGY_DIRECTORY)
 * {root}/keyspaces/{ks}/moving/{hex start}   UTF-8 migration id; the range starting there is being moved
 * {root}/keyspaces/{ks}/moving/bucket/{b}    UTF-8 migration id; hash bucket b is being moved
 * {root}/keyspaces/{ks}/moving/ring          UTF-8 migration id; a ring node is joining or leaving
 * {root}/keyspaces/{ks}/moving/entry/{hex}   UTF-8 migration id; the directory entry is being moved
 * {root}/keyspaces/{ks}/moving/region/{hex}  UTF-8 migration id; the geographic region (hex of its UTF-8 name) is being moved
 * {root}/keyspaces/{ks}/moving-guard        empty; rewritten by every transaction that writes a moving marker
 * {root}/migrations/{id}                     Migration (the migrator's persisted state machine)
 * {root}/migration-owners/{id}               UTF-8 worker name, under the driving worker's lease
 * {root}/clients/{server}                    ClientPresence, under that directory server's lease
 * {root}/load/{ks}/{minute}/{server}         KeyspaceLoad: that directory server's part of the 1-minute load column starting at {minute} (Unix ms), under a lease that expires ~17 minutes later (docs/load.md)
 * {root}/txn-resolver                        UTF-8 server id of the directory server that runs the resolver, under its lease
 * {root}/ids/{gen}/workers/{w}               WorkerClaim: worker id w (decimal) of id generator gen, under its owner's lease
 * {root}/ids/{gen}/high-water/{w}            WorkerHighWater: the ms up to which owners of w may have issued ids; never lowered
 * {root}/sequences/{name}                    Sequence: a dense sequence's next unreserved number and settings
 * {root}/reference/tables/{table}            ReferenceTable: a table copied on every shard of its keyspaces ({table} canonical, e.g. public.countries)
 * {root}/reference/guard                     empty; rewritten by every declaration of a reference table
 * {root}/owners-guard                        empty; rewritten by every write that makes any shard an owner of any key
 * {root}/size-sampler                        UTF-8 server id of the directory server that takes sizes periodically, under its lease
 * {root}/sizes/head/{ks}                     KeyspaceSizes without units: when, how, and per shard (docs/sizes.md)
 * {root}/sizes/units/{ks}/{taken}/{chunk}    KeyspaceSizes holding only units: chunk (6 digits) of the sizes taken at {taken} (ms, 13 digits)
 * </pre>
 */
public final class CatalogPaths {
  private final String root;
  private final String shards;
  private final String shardRefs;
  private final String keyspaces;

  public CatalogPaths(String root) {
    if (root.isEmpty() || !root.startsWith("/") || root.endsWith("/")) {
      throw new IllegalArgumentException("etcd prefix must start with '/' and not end with '/', got '"
          + root + "'");
    }
    this.root = root;
    this.shards = root + "/shards/";
    this.shardRefs = root + "/shardrefs/";
    this.keyspaces = root + "/keyspaces/";
  }

  /** Every key of Shardmap starts with this. */
  public String rootPrefix() {
    return root + "/";
  }

  /** Every shard registration starts with this. */
  public String shardsPrefix() {
    return shards;
  }

  public String shard(String name) {
    return shards + name;
  }

  public String shardRef(String name) {
    return shardRefs + name;
  }

  /** Every keyspace's records start with this. */
  public String keyspacesPrefix() {
    return keyspaces;
  }

  public String keyspacePrefix(String ks) {
    return keyspaces + ks + "/";
  }

  public String spec(String ks) {
    return keyspacePrefix(ks) + "spec";
  }

  public String layout(String ks) {
    return keyspacePrefix(ks) + "layout";
  }

  public String range(String ks, byte[] start) {
    return keyspacePrefix(ks) + "ranges/" + Keys.hex(start);
  }

  public String entry(String ks, byte[] canonicalKey) {
    return keyspacePrefix(ks) + "entries/" + Keys.hex(canonicalKey);
  }

  /** The marker of a range being moved (its value is the migration id); see docs/migrator-design.md. */
  public String moving(String ks, byte[] rangeStart) {
    return movingPrefix(ks) + Keys.hex(rangeStart);
  }

  /** The marker of a hash bucket being moved. ('/' is no hex digit: no range marker looks like it.) */
  public String movingBucket(String ks, int bucket) {
    return movingPrefix(ks) + "bucket/" + bucket;
  }

  /** The marker of a ring node joining or leaving: one key, so one such move per keyspace at a time. */
  public String movingRing(String ks) {
    return movingPrefix(ks) + "ring";
  }

  /** The marker of a directory entry being moved. */
  public String movingEntry(String ks, byte[] canonicalKey) {
    return movingPrefix(ks) + "entry/" + Keys.hex(canonicalKey);
  }

  /** The marker of a geographic region being moved (its name in hex: names may hold any character). */
  public String movingRegion(String ks, String region) {
    return movingPrefix(ks) + "region/" + Keys.hex(region.getBytes(java.nio.charset.StandardCharsets.UTF_8));
  }

  public String movingPrefix(String ks) {
    return keyspacePrefix(ks) + "moving/";
  }

  /**
   * Rewritten (empty value) by every transaction that writes a moving marker of {@code ks}, so that
   * DropKeyspace can require "no marker written since I read none" with a compare on one known key:
   * etcd compares (as {@code store.Compare} exposes them) are per key, and a new marker's key is not known
   * in advance. See {@link MovingMarkers}.
   */
  public String movingGuard(String ks) {
    return keyspacePrefix(ks) + "moving-guard";
  }

  public String migrationsPrefix() {
    return root + "/migrations/";
  }

  public String migration(String id) {
    return migrationsPrefix() + id;
  }

  public String migrationOwnersPrefix() {
    return root + "/migration-owners/";
  }

  public String migrationOwner(String id) {
    return migrationOwnersPrefix() + id;
  }

  /** Where each directory server publishes the revisions its watching clients have applied. */
  public String clientsPrefix() {
    return root + "/clients/";
  }

  public String clients(String serverId) {
    return clientsPrefix() + serverId;
  }

  /** Where each directory server publishes its part of the recent 1-minute load columns (docs/load.md). */
  public String loadPrefix() {
    return root + "/load/";
  }

  /** One server's part of one keyspace's 1-minute load column starting at {@code minuteUnixMs}. */
  public String load(String keyspace, long minuteUnixMs, String serverId) {
    return loadPrefix() + keyspace + "/" + minuteUnixMs + "/" + serverId;
  }

  /**
   * Held (created if absent, under a lease) by the one directory server that resolves in-doubt cross-shard
   * transactions; see docs/transactions.md.
   */
  public String txnResolver() {
    return root + "/txn-resolver";
  }

  /** The balancer's policy (a BalancerPolicy); see docs/balancing.md. */
  public String balancerPolicy() {
    return root + "/balancer/policy";
  }

  /** What the balancer did last (a BalancerState), written by the one that holds {@link #balancerLeader}. */
  public String balancerState() {
    return root + "/balancer/state";
  }

  /** Held (created if absent, under a lease) by the one balancer process that acts. */
  public String balancerLeader() {
    return root + "/balancer/leader";
  }

  /** Every key of id generator {@code generator}: its worker claims and their high-water marks. */
  public String idGeneratorPrefix(String generator) {
    return root + "/ids/" + generator + "/";
  }

  /** The claim of worker id {@code worker} of {@code generator}, under its owner's etcd lease. */
  public String workerClaim(String generator, int worker) {
    return workerClaimsPrefix(generator) + worker;
  }

  public String workerClaimsPrefix(String generator) {
    return idGeneratorPrefix(generator) + "workers/";
  }

  /** The persistent high-water mark of worker id {@code worker} of {@code generator} (see docs/worker-leases.md). */
  public String workerHighWater(String generator, int worker) {
    return workerHighWaterPrefix(generator) + worker;
  }

  public String workerHighWaterPrefix(String generator) {
    return idGeneratorPrefix(generator) + "high-water/";
  }

  /** Every dense sequence's record starts with this. */
  public String sequencesPrefix() {
    return root + "/sequences/";
  }

  /** The record of dense sequence {@code name}: its next unreserved number (see docs/ids.md, "Dense sequences"). */
  public String sequence(String name) {
    return sequencesPrefix() + name;
  }

  /** Every reference table's record starts with this. */
  public String referenceTablesPrefix() {
    return root + "/reference/tables/";
  }

  /** The record of reference table {@code table} (its canonical name, {@code schema.table}). */
  public String referenceTable(String table) {
    return referenceTablesPrefix() + table;
  }

  /**
   * Rewritten (empty) by every declaration of a reference table, so that a map edit that read the records
   * can require "no table was declared since" with a compare on one known key (a new record's key is not
   * known in advance); see {@link ReferenceTables#unchangedSince}.
   */
  public String referenceGuard() {
    return root + "/reference/guard";
  }

  /**
   * Rewritten (empty) by every write that makes a shard an owner ({@link MapEdits#guardOwners}): a writer
   * that must know no shard became an owner since it read the maps (a reference table's copies) compares it.
   */
  public String ownersGuard() {
    return root + "/owners-guard";
  }

  /** Held (created if absent, under a lease) by the one directory server that takes sizes every interval. */
  public String sizeSampler() {
    return root + "/size-sampler";
  }

  /** Every keyspace's latest sizes record (without its units) starts with this: one read for all of them. */
  public String sizesHeadsPrefix() {
    return root + "/sizes/head/";
  }

  /**
   * The latest sizes of keyspace {@code ks}: a KeyspaceSizes without units, written after all its unit chunks
   * ({@link #sizesUnits}), so a reader that sees it finds them (docs/sizes.md).
   */
  public String sizesHead(String ks) {
    return sizesHeadsPrefix() + ks;
  }

  /** Every unit chunk of every set of sizes of {@code ks}. */
  public String sizesUnitsPrefix(String ks) {
    return root + "/sizes/units/" + ks + "/";
  }

  /** The unit chunks of the sizes of {@code ks} taken at {@code takenUnixMs}. */
  public String sizesUnitsPrefix(String ks, long takenUnixMs) {
    return sizesUnitsPrefix(ks) + String.format(java.util.Locale.ROOT, "%013d", takenUnixMs) + "/";
  }

  /** One chunk (in position order from 0) of the units of the sizes of {@code ks} taken at {@code takenUnixMs}. */
  public String sizesUnits(String ks, long takenUnixMs, int chunk) {
    return sizesUnitsPrefix(ks, takenUnixMs) + String.format(java.util.Locale.ROOT, "%06d", chunk);
  }

  enum Kind { SHARD, SPEC, LAYOUT, RANGE, ENTRY }

  record Parsed(Kind kind, String name, String keyspace, byte[] bytes) {}

  /** Classifies a key; {@code null} for keys Shardmap does not route by (shardrefs, foreign keys). */
  Parsed classify(String key) {
    if (key.startsWith(shards)) {
      return new Parsed(Kind.SHARD, key.substring(shards.length()), null, null);
    }
    if (!key.startsWith(keyspaces)) {
      return null;
    }
    String rest = key.substring(keyspaces.length());
    int slash = rest.indexOf('/');
    if (slash <= 0) {
      return null;
    }
    String ks = rest.substring(0, slash);
    String tail = rest.substring(slash + 1);
    if (tail.equals("spec")) {
      return new Parsed(Kind.SPEC, null, ks, null);
    }
    if (tail.equals("layout")) {
      return new Parsed(Kind.LAYOUT, null, ks, null);
    }
    try {
      if (tail.startsWith("ranges/")) {
        return new Parsed(Kind.RANGE, null, ks, Keys.fromHex(tail.substring(7)));
      }
      if (tail.startsWith("entries/")) {
        return new Parsed(Kind.ENTRY, null, ks, Keys.fromHex(tail.substring(8)));
      }
    } catch (IllegalArgumentException e) {
      return null;
    }
    return null;
  }

}
