package dypls

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
)

// CredentialSources lists, in the order the SDK's default credentials chain
// tries them, where credentials come from when no static AccessKey is
// configured. The first that hands out credentials is used from then on.
var CredentialSources = []string{
	"environment: ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET (with ALIBABA_CLOUD_SECURITY_TOKEN for STS)",
	"OIDC role (RRSA): ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN and ALIBABA_CLOUD_OIDC_TOKEN_FILE",
	"CLI profile: ~/.aliyun/config.json (ALIBABA_CLOUD_PROFILE names the profile; ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true skips it)",
	"credentials file: ~/.alibabacloud/credentials or ALIBABA_CLOUD_CREDENTIALS_FILE",
	"ECS RAM role from the instance metadata service (ALIBABA_CLOUD_ECS_METADATA names the role; ALIBABA_CLOUD_ECS_METADATA_DISABLED=true skips it)",
	"credentials URI: ALIBABA_CLOUD_CREDENTIALS_URI",
}

// CredentialsError says that the credentials source could not hand out
// credentials: the chain found none, or a refresh failed. Reason is the
// provider's own text, with any secret or token hidden.
type CredentialsError struct {
	Source string // the source that failed, e.g. default/credential_uri; "" before any worked
	Reason string
}

// Error names the source and the provider's reason.
func (e *CredentialsError) Error() string {
	if e.Source == "" {
		return "no credentials: " + e.Reason
	}
	return "credentials from " + e.Source + " not refreshed: " + e.Reason
}

// credProvider is the one credentials provider every pooled SDK client
// signs with: the SDK asks it for credentials on every request, so a
// refresh reaches all clients at once. The SDK's providers keep their cache
// without a lock; credProvider serialises them. With a static AccessKey it
// never refreshes; with the SDK's default chain it can be made to drop the
// cached credentials of the source in use (forceRefresh).
type credProvider struct {
	mu sync.Mutex
	// build makes a provider for source ("" for the whole chain); nil
	// for static credentials.
	build  func(source string) credentials.CredentialsProvider
	inner  credentials.CredentialsProvider
	source string                   // ProviderName of the last credentials handed out
	last   *credentials.Credentials // the last credentials handed out
}

func staticProvider(cfg Config) *credProvider {
	var p credentials.CredentialsProvider = credentials.NewStaticAKCredentialsProvider(cfg.AccessKeyID, cfg.AccessKeySecret)
	if cfg.SecurityToken != "" {
		p = credentials.NewStaticSTSCredentialsProvider(cfg.AccessKeyID, cfg.AccessKeySecret, cfg.SecurityToken)
	}
	return &credProvider{inner: p}
}

func chainProvider() *credProvider {
	p := &credProvider{build: sourceProvider}
	p.inner = p.build("")
	return p
}

// sourceProvider returns the SDK's provider for a source named as the
// default chain names it ("default/credential_uri"), with an empty cache,
// or the whole default chain when the source is not one of them.
func sourceProvider(source string) credentials.CredentialsProvider {
	parts := strings.Split(source, "/")
	if len(parts) < 2 || parts[0] != "default" {
		return credentials.NewDefaultCredentialsProvider()
	}
	switch parts[1] {
	case "env":
		return credentials.NewEnvironmentVariableCredentialsProvider()
	case "oidc_role_arn":
		if p, err := credentials.NewOIDCCredentialsProviderBuilder().Build(); err == nil {
			return p
		}
	case "cli_profile":
		return credentials.NewCLIProfileCredentialsProviderBuilder().Build()
	case "profile":
		return credentials.NewProfileCredentialsProviderBuilder().Build()
	case "ecs_ram_role":
		if p, err := credentials.NewECSRAMRoleCredentialsProviderBuilder().Build(); err == nil {
			return p
		}
	case "credential_uri":
		if p, err := credentials.NewURLCredentialsProviderBuilderBuilder().Build(); err == nil {
			return p
		}
	}
	return credentials.NewDefaultCredentialsProvider()
}

// GetCredentials hands out the source's current credentials; the SDK's
// provider fetches new ones when they are near their expiry. A failure
// comes back as a *CredentialsError.
func (p *credProvider) GetCredentials() (*credentials.Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.getLocked()
}

func (p *credProvider) getLocked() (*credentials.Credentials, error) {
	cc, err := p.inner.GetCredentials()
	if err != nil {
		if p.build != nil {
			// After a failed walk the SDK's chain would ask only the last
			// source it tried: start afresh (the whole chain, or the
			// source in use) next time.
			p.inner = p.build(p.source)
		}
		return nil, &CredentialsError{Source: p.source, Reason: redactSecrets(err.Error())}
	}
	if cc == nil || cc.AccessKeyId == "" {
		return nil, &CredentialsError{Source: p.source, Reason: "the source handed out no AccessKeyId"}
	}
	p.source, p.last = cc.ProviderName, cc
	return cc, nil
}

// GetProviderName names the provider in the SDK's request headers.
func (p *credProvider) GetProviderName() string { return "dyplsq" }

// refreshable reports whether credentials can be refreshed at all.
func (p *credProvider) refreshable() bool { return p.build != nil }

// forceRefresh is called after the gateway refused the credentials a call
// was signed with (its AccessKeyId and SecurityToken). If other credentials
// have been handed out since, those are used; otherwise the source's cache
// is dropped and it is asked again. It returns errNotRefreshed when the
// source hands out the very credentials that were refused, and a
// *CredentialsError when it fails.
func (p *credProvider) forceRefresh(usedID, usedToken string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last != nil && (p.last.AccessKeyId != usedID || p.last.SecurityToken != usedToken) {
		return nil
	}
	p.inner = p.build(p.source)
	cc, err := p.getLocked()
	if err != nil {
		return err
	}
	if cc.AccessKeyId == usedID && cc.SecurityToken == usedToken {
		return errNotRefreshed
	}
	return nil
}

// errNotRefreshed: the source has nothing newer than what was refused.
var errNotRefreshed = errors.New("the credentials source handed out the same credentials again")

// secretField matches the value of a secret in a provider's error text,
// which may quote the source's whole JSON reply.
var secretField = regexp.MustCompile(`("?(?:AccessKeySecret|SecurityToken|OIDCToken|SessionAccessKeySecret)"?\s*[:=]\s*"?)[^",}&\s]*`)

// redactSecrets hides secrets, tokens and phone numbers in a provider's
// error text and keeps it to one line.
func redactSecrets(s string) string {
	s = secretField.ReplaceAllString(s, "${1}***")
	return redactTokens(strings.Join(strings.Fields(s), " "))
}

// CredentialSource returns the name of the source the credentials come
// from, as the SDK names it: "static_ak" or "static_sts" for a configured
// AccessKey, "default/env", "default/oidc_role_arn", "default/cli_profile/…",
// "default/profile/…", "default/ecs_ram_role" or "default/credential_uri"
// for the default chain. It asks the source for credentials if none have
// been fetched yet; the error is a *CredentialsError.
func (c *Client) CredentialSource() (string, error) {
	c.creds.mu.Lock()
	defer c.creds.mu.Unlock()
	if c.creds.last != nil {
		return c.creds.source, nil
	}
	cc, err := c.creds.getLocked()
	if err != nil {
		return "", err
	}
	return cc.ProviderName, nil
}

// credentialsCode reports whether a gateway code says the signing
// credentials were refused in a way fresh STS credentials can cure: an
// expired or unknown token, or a temporary AccessKeyId the gateway no
// longer knows.
func credentialsCode(code string, sts bool) bool {
	return strings.HasPrefix(code, "InvalidSecurityToken") || (sts && strings.HasPrefix(code, "InvalidAccessKeyId"))
}

// credentialsErr turns a failure to get credentials into the Error every
// call returns.
func credentialsErr(action string, err error) *Error {
	var ce *CredentialsError
	if errors.As(err, &ce) {
		return newError(action, CodeCredentials, ce.Error(), "", 0, false)
	}
	return newError(action, CodeCredentials, fmt.Sprint(err), "", 0, false)
}
