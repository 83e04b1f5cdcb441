// Creates SCRAM credentials and ACLs on a running broker through Kafka's Admin API, in one JVM
// (kafka-acls.sh would start one JVM per principal). Run by secure.sh as a single-file source:
//   java -cp 'dist/libs/*' SecureSetup.java ADMIN_CLIENT_PROPERTIES < commands
// Commands come on stdin, never argv (passwords must not show in ps), one a line:
//   scram NAME PASSWORD                                  SCRAM-SHA-512 credential (created or replaced)
//   acl PRINCIPAL topic|group literal|prefixed NAME OP   an ALLOW ACL for host *
// Blank lines and lines starting with # are skipped. Exit 1 with the broker's error on failure.
import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class SecureSetup {
  public static void main(String[] args) throws Exception {
    if (args.length != 1) {
      System.err.println("usage: java SecureSetup.java ADMIN_CLIENT_PROPERTIES < commands");
      System.exit(2);
    }
    Properties props = new Properties();
    try (FileInputStream in = new FileInputStream(args[0])) {
      props.load(in);
    }
    List<AclBinding> acls = new ArrayList<>();
    List<UserScramCredentialAlteration> users = new ArrayList<>();
    BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    int lineNo = 0;
    for (String line; (line = r.readLine()) != null; ) {
      lineNo++;
      line = line.trim();
      if (line.isEmpty() || line.startsWith("#")) continue;
      String[] f = line.split("\\s+");
      if (f[0].equals("scram") && f.length == 3) {
        users.add(new UserScramCredentialUpsertion(f[1], new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), f[2]));
      } else if (f[0].equals("acl") && f.length == 6) {
        ResourceType type = ResourceType.fromString(f[2].toUpperCase(Locale.ROOT));
        PatternType pattern = PatternType.fromString(f[3].toUpperCase(Locale.ROOT));
        AclOperation op = AclOperation.fromString(f[5].toUpperCase(Locale.ROOT));
        if (type == ResourceType.UNKNOWN || pattern == PatternType.UNKNOWN || op == AclOperation.UNKNOWN) {
          throw new IllegalArgumentException("stdin line " + lineNo + ": unknown resource, pattern or operation: " + line);
        }
        acls.add(new AclBinding(new ResourcePattern(type, f[4], pattern), new AccessControlEntry(f[1], "*", op, AclPermissionType.ALLOW)));
      } else {
        // the line may hold a password: name the line, never print it
        throw new IllegalArgumentException("stdin line " + lineNo + " is neither \"scram NAME PASSWORD\" nor \"acl PRINCIPAL RESOURCE PATTERN NAME OP\"");
      }
    }
    try (Admin admin = Admin.create(props)) {
      if (!users.isEmpty()) admin.alterUserScramCredentials(users).all().get(60, TimeUnit.SECONDS);
      if (!acls.isEmpty()) admin.createAcls(acls).all().get(60, TimeUnit.SECONDS);
    }
    System.err.println("SecureSetup: " + users.size() + " SCRAM credential(s), " + acls.size() + " ACL(s)");
  }
}
