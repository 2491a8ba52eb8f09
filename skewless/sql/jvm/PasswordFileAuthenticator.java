package io.skewless.sql;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.spec.KeySpec;
import java.util.Base64;
import java.util.List;

import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import javax.security.sasl.AuthenticationException;

import org.apache.hive.service.auth.PasswdAuthenticationProvider;

/**
 * The Thrift server's custom authentication provider: users and PBKDF2-SHA256 password hashes in a
 * file, one {@code user:pbkdf2_sha256:ITERATIONS:SALT_B64:HASH_B64} line each (written by
 * {@code skewless sql --add-user}). The file is read on every login, so a change needs no restart.
 * A failure says only that authentication failed: nothing about which part was wrong.
 */
public final class PasswordFileAuthenticator implements PasswdAuthenticationProvider {
    private static volatile Path file;

    /** Set once by the server before it starts listening. */
    public static void configure(String path) {
        file = Path.of(path);
    }

    @Override
    public void Authenticate(String user, String password) throws AuthenticationException {
        Path f = file;
        if (f == null || user == null || password == null) {
            throw new AuthenticationException("authentication failed");
        }
        List<String> lines;
        try {
            lines = Files.readAllLines(f, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new AuthenticationException("authentication failed (password file unreadable)");
        }
        for (String line : lines) {
            String[] parts = line.trim().split(":");
            if (parts.length == 5 && parts[0].equals(user) && parts[1].equals("pbkdf2_sha256")) {
                if (matches(password, Integer.parseInt(parts[2]), parts[3], parts[4])) {
                    return;
                }
                break;
            }
        }
        throw new AuthenticationException("authentication failed");
    }

    private static boolean matches(String password, int iterations, String saltB64, String hashB64) {
        try {
            byte[] salt = Base64.getDecoder().decode(saltB64);
            byte[] expected = Base64.getDecoder().decode(hashB64);
            KeySpec spec = new PBEKeySpec(password.toCharArray(), salt, iterations, expected.length * 8);
            byte[] actual = SecretKeyFactory.getInstance("PBKDF2WithHmacSHA256").generateSecret(spec).getEncoded();
            return MessageDigest.isEqual(actual, expected);  // constant time
        } catch (Exception e) {
            return false;
        }
    }
}
